//! The SSM adapter against moto. The moto gap proxy serves
//! DescribeInstanceInformation from moto's EC2 state.

use gpu_recovery_aws::SsmHostControl;
use gpu_recovery_aws::ssm::{REBOOT_SCRIPT, RUN_SHELL_SCRIPT};
use gpu_recovery_domain::observation::CommandStatus;
use gpu_recovery_ports::{HostControl, RebootOutcome};

use crate::support::{clients, run_ec2_instances, stop_ec2_instance, unique};

#[tokio::test]
async fn ssm_reboot_found_by_token() {
    let clients = clients().await;
    let host = SsmHostControl::new(clients.ssm.clone());
    let instance = run_ec2_instances(1).remove(0);
    let token = unique("grboot");

    assert_eq!(host.find_reboot(&instance, &token).await.unwrap(), None);
    let RebootOutcome::Sent { command_id } = host.reboot(&instance, &token).await.unwrap() else {
        panic!("reboot was not sent");
    };
    assert_eq!(
        host.find_reboot(&instance, &token).await.unwrap(),
        Some(command_id.clone())
    );
    assert_eq!(
        host.find_reboot(&instance, "grboot-other").await.unwrap(),
        None
    );

    let listed = clients
        .ssm
        .list_commands()
        .instance_id(&instance)
        .send()
        .await
        .unwrap();
    let commands = listed.commands();
    assert_eq!(commands.len(), 1);
    let command = &commands[0];
    assert_eq!(command.command_id(), Some(command_id.as_str()));
    assert_eq!(command.document_name(), Some(RUN_SHELL_SCRIPT));
    assert_eq!(command.comment(), Some(token.as_str()));
    let script = command
        .parameters()
        .and_then(|p| p.get("commands"))
        .cloned()
        .unwrap_or_default();
    let expected: Vec<String> = REBOOT_SCRIPT
        .iter()
        .map(|line| (*line).to_owned())
        .collect();
    assert_eq!(script, expected);

    assert_eq!(
        host.reboot_status(&instance, &command_id).await.unwrap(),
        Some(CommandStatus::Success)
    );
    assert_eq!(
        host.reboot_status(&instance, "0000-no-such-command")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn ssm_reachable_follows_instance_state() {
    let clients = clients().await;
    let host = SsmHostControl::new(clients.ssm.clone());
    let instances = run_ec2_instances(2);
    assert!(host.is_reachable(&instances[0]).await.unwrap());
    stop_ec2_instance(&instances[1]);
    assert!(!host.is_reachable(&instances[1]).await.unwrap());
    assert!(!host.is_reachable("i-00000000000000000").await.unwrap());
}

#[tokio::test]
async fn ssm_reboot_rejects_long_token() {
    let clients = clients().await;
    let host = SsmHostControl::new(clients.ssm.clone());
    let instance = run_ec2_instances(1).remove(0);
    let error = host.reboot(&instance, &"x".repeat(101)).await.unwrap_err();
    assert!(
        error.to_string().contains("100-character comment"),
        "{error}"
    );
    assert_eq!(
        host.find_reboot(&instance, &"x".repeat(101)).await.unwrap(),
        None
    );
}
