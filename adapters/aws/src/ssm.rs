//! The host-control port on AWS Systems Manager Run Command.
//!
//! A reboot is one SendCommand of the `AWS-RunShellScript` document with the
//! fixed script [`REBOOT_SCRIPT`]; nothing from an event reaches the command
//! text. The engine's idempotency token goes into the command's Comment, so
//! [`SsmHostControl::find_reboot`] can find a command that was sent before a
//! crash and the node is never rebooted twice for one episode.

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::{
    CommandFilter, CommandFilterKey, CommandInvocationStatus, InstanceInformationStringFilter,
    PingStatus,
};
use gpu_recovery_domain::observation::CommandStatus;
use gpu_recovery_ports::{CallError, HostControl, RebootOutcome};

use crate::errors::{call_error, classify};

pub const RUN_SHELL_SCRIPT: &str = "AWS-RunShellScript";

/// SSM limits a command's Comment to 100 characters.
const MAX_COMMENT: usize = 100;

/// How long SSM may wait to deliver the command, and how long the script may run.
const DELIVERY_TIMEOUT_SECONDS: i32 = 600;
const EXECUTION_TIMEOUT_SECONDS: &str = "600";

/// The reboot script.
///
/// Run Command reboots a Linux node safely when the script exits 194: SSM
/// Agent records the command as still in progress, reboots the instance, and
/// runs the script again after the boot (AWS Systems Manager User Guide,
/// "Handling reboots when running commands"). A `reboot` or `shutdown` inside
/// the script would instead cut the agent off and leave the command's status
/// wrong. Because the script runs twice, it keeps the boot id of the first
/// run in a marker file: the second run reads a different boot id, removes
/// the marker and exits 0, which SSM reports as Success. A marker older than
/// an hour is ignored, so one left by an interrupted run never stands in for
/// a reboot that did not happen.
pub const REBOOT_SCRIPT: &[&str] = &[
    "set -eu",
    "marker=/var/lib/gpu-recovery/reboot-boot-id",
    "boot_id=$(cat /proc/sys/kernel/random/boot_id)",
    "if [ -f \"$marker\" ] && [ \"$(cat \"$marker\")\" != \"$boot_id\" ] && [ -n \"$(find \"$marker\" -mmin -60)\" ]; then",
    "  rm -f \"$marker\"",
    "  echo \"gpu-recovery: back from reboot, boot id $boot_id\"",
    "  exit 0",
    "fi",
    "mkdir -p /var/lib/gpu-recovery",
    "echo \"$boot_id\" > \"$marker\"",
    "sync",
    "echo \"gpu-recovery: rebooting from boot id $boot_id\"",
    "exit 194",
];

/// Reboots and reachability checks through SSM.
#[derive(Debug, Clone)]
pub struct SsmHostControl {
    client: Client,
}

impl SsmHostControl {
    #[must_use]
    pub fn new(client: Client) -> SsmHostControl {
        SsmHostControl { client }
    }
}

fn command_status(status: &CommandInvocationStatus) -> Option<CommandStatus> {
    match status {
        CommandInvocationStatus::Pending | CommandInvocationStatus::Delayed => {
            Some(CommandStatus::Pending)
        }
        CommandInvocationStatus::InProgress | CommandInvocationStatus::Cancelling => {
            Some(CommandStatus::InProgress)
        }
        CommandInvocationStatus::Success => Some(CommandStatus::Success),
        CommandInvocationStatus::Cancelled
        | CommandInvocationStatus::Failed
        | CommandInvocationStatus::TimedOut => Some(CommandStatus::Failed),
        _ => None,
    }
}

impl HostControl for SsmHostControl {
    async fn is_reachable(&self, instance_id: &str) -> Result<bool, CallError> {
        let filter = InstanceInformationStringFilter::builder()
            .key("InstanceIds")
            .values(instance_id)
            .build()
            .map_err(|e| CallError::rejected("DescribeInstanceInformation", e.to_string()))?;
        let output = self
            .client
            .describe_instance_information()
            .filters(filter)
            .send()
            .await
            .map_err(|e| call_error("DescribeInstanceInformation", &e))?;
        Ok(output.instance_information_list().iter().any(|info| {
            info.instance_id() == Some(instance_id)
                && info.ping_status() == Some(&PingStatus::Online)
        }))
    }

    async fn find_reboot(
        &self,
        instance_id: &str,
        token: &str,
    ) -> Result<Option<String>, CallError> {
        let filter = CommandFilter::builder()
            .key(CommandFilterKey::DocumentName)
            .value(RUN_SHELL_SCRIPT)
            .build()
            .map_err(|e| CallError::rejected("ListCommands", e.to_string()))?;
        let mut next: Option<String> = None;
        loop {
            let output = self
                .client
                .list_commands()
                .instance_id(instance_id)
                .filters(filter.clone())
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| call_error("ListCommands", &e))?;
            let found = output.commands().iter().find(|command| {
                command.comment() == Some(token)
                    && command.document_name() == Some(RUN_SHELL_SCRIPT)
                    && command.instance_ids().iter().any(|id| id == instance_id)
            });
            if let Some(command) = found {
                return Ok(command.command_id().map(str::to_owned));
            }
            match output.next_token {
                Some(token) if !token.is_empty() => next = Some(token),
                _ => return Ok(None),
            }
        }
    }

    async fn reboot(&self, instance_id: &str, token: &str) -> Result<RebootOutcome, CallError> {
        if token.chars().count() > MAX_COMMENT {
            return Err(CallError::rejected(
                "SendCommand",
                format!(
                    "reboot token {token:?} is longer than SSM's {MAX_COMMENT}-character comment"
                ),
            ));
        }
        let commands: Vec<String> = REBOOT_SCRIPT
            .iter()
            .map(|line| (*line).to_owned())
            .collect();
        let sent = self
            .client
            .send_command()
            .document_name(RUN_SHELL_SCRIPT)
            .instance_ids(instance_id)
            .comment(token)
            .timeout_seconds(DELIVERY_TIMEOUT_SECONDS)
            .parameters("commands", commands)
            .parameters(
                "executionTimeout",
                vec![EXECUTION_TIMEOUT_SECONDS.to_owned()],
            )
            .send()
            .await;
        match sent {
            Ok(output) => match output.command().and_then(|c| c.command_id()) {
                Some(id) => Ok(RebootOutcome::Sent {
                    command_id: id.to_owned(),
                }),
                None => Err(CallError::transient(
                    "SendCommand",
                    format!("SSM returned no command id for the reboot of {instance_id}"),
                )),
            },
            Err(error) => {
                let failure = classify(&error);
                // The instance is not managed by SSM or not in a state to run
                // commands: no retry changes that.
                if failure.has_code("InvalidInstanceId") {
                    Ok(RebootOutcome::Rejected {
                        reason: format!("SSM rejected instance {instance_id}: {}", failure.message),
                    })
                } else {
                    Err(failure.into_call_error("SendCommand"))
                }
            }
        }
    }

    async fn reboot_status(
        &self,
        instance_id: &str,
        command_id: &str,
    ) -> Result<Option<CommandStatus>, CallError> {
        let result = self
            .client
            .get_command_invocation()
            .command_id(command_id)
            .instance_id(instance_id)
            .send()
            .await;
        match result {
            Ok(output) => Ok(output.status().and_then(command_status)),
            Err(error) => {
                let failure = classify(&error);
                // No such command, or no invocation of it on this instance.
                if failure.has_code("InvocationDoesNotExist")
                    || failure.has_code("InvalidCommandId")
                {
                    Ok(None)
                } else {
                    Err(failure.into_call_error("GetCommandInvocation"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reboot_script_exits_194() {
        assert_eq!(REBOOT_SCRIPT.last(), Some(&"exit 194"));
        assert!(REBOOT_SCRIPT.iter().all(|line| !line.contains("shutdown")));
    }

    #[test]
    fn command_status_maps_terminal_states() {
        assert_eq!(
            command_status(&CommandInvocationStatus::Success),
            Some(CommandStatus::Success)
        );
        assert_eq!(
            command_status(&CommandInvocationStatus::TimedOut),
            Some(CommandStatus::Failed)
        );
        assert_eq!(
            command_status(&CommandInvocationStatus::Delayed),
            Some(CommandStatus::Pending)
        );
    }
}
