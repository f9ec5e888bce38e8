//! NVRM Xid events from the kernel log, and the action NVIDIA recommends for each code.
//!
//! The NVIDIA driver logs a GPU fault as a kernel line such as
//! `NVRM: Xid (PCI:0000:53:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.`
//! [`parse_kernel_log`] reads these lines from `dmesg`, `journalctl -k` or `/dev/kmsg`
//! output. [`catalog_action`] maps a code to the immediate action of NVIDIA's Xid
//! catalog, and [`xid_verdict`] turns that action into a health-check verdict.

use std::fmt;

use gpu_recovery_domain::Verdict;
use serde::{Deserialize, Serialize};

/// One NVRM Xid line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XidEvent {
    /// PCI address as the driver prints it, without the `PCI:` prefix (`0000:53:00`).
    pub pci_bus_id: String,
    /// Xid code.
    pub code: u32,
    /// Process id from `pid=`, when the driver knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Process name from `name=`, when the driver knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_name: Option<String>,
    /// The rest of the line: the driver's description of the fault.
    pub message: String,
}

const XID_MARKER: &str = "NVRM: Xid (";

/// Reads every NVRM Xid line of a kernel log. Other lines, and Xid lines whose code is
/// not a number, are skipped. Prefixes before `NVRM:` (a dmesg timestamp, a journal
/// header, a `/dev/kmsg` record header) are ignored.
#[must_use]
pub fn parse_kernel_log(text: &str) -> Vec<XidEvent> {
    text.lines().filter_map(parse_xid_line).collect()
}

fn parse_xid_line(line: &str) -> Option<XidEvent> {
    let start = line.find(XID_MARKER)? + XID_MARKER.len();
    let rest = &line[start..];
    let close = rest.find("):")?;
    let address = rest[..close].trim();
    let pci_bus_id = address.strip_prefix("PCI:").unwrap_or(address).to_owned();

    let after = rest[close + 2..].trim_start();
    let digits = after.bytes().take_while(u8::is_ascii_digit).count();
    let code = after[..digits].parse().ok()?;
    let mut tail = after[digits..].trim_start();
    tail = tail.strip_prefix(',').unwrap_or(tail).trim_start();

    let mut pid = None;
    let mut process_name = None;
    if let Some(value) = tail.strip_prefix("pid=") {
        let (field, remainder) = split_field(value);
        pid = field.trim_matches('\'').parse().ok();
        tail = remainder;
    }
    if let Some(value) = tail.strip_prefix("name=") {
        let (field, remainder) = split_field(value);
        let field = field.trim_matches('\'');
        if field != "<unknown>" && !field.is_empty() {
            process_name = Some(field.to_owned());
        }
        tail = remainder;
    }

    Some(XidEvent {
        pci_bus_id,
        code,
        pid,
        process_name,
        message: tail.trim().to_owned(),
    })
}

/// Splits `value, rest` at the first comma into the field and the trimmed rest.
fn split_field(value: &str) -> (&str, &str) {
    match value.find(',') {
        Some(index) => (&value[..index], value[index + 1..].trim_start()),
        None => (value, ""),
    }
}

/// The "Resolution Bucket (Immediate Action)" of NVIDIA's Xid catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CatalogAction {
    /// No action needed.
    #[serde(rename = "IGNORE")]
    Ignore,
    /// Restart the application; the GPU is healthy.
    #[serde(rename = "RESTART_APP")]
    RestartApp,
    /// Reset the GPU.
    #[serde(rename = "RESET_GPU")]
    ResetGpu,
    /// Restart the bare-metal node.
    #[serde(rename = "RESTART_BM")]
    RestartBareMetal,
    /// Restart the virtual machine.
    #[serde(rename = "RESTART_VM")]
    RestartVm,
    /// Check the board's power connection and mechanics.
    #[serde(rename = "CHECK_MECHANICALS")]
    CheckMechanicals,
    /// Update the software or firmware.
    #[serde(rename = "UPDATE_SWFW")]
    UpdateSoftware,
    /// Check the unified memory driver.
    #[serde(rename = "CHECK_UVM")]
    CheckUvm,
    /// A code the catalog marks unused on current GPUs: contact NVIDIA support.
    #[serde(rename = "CONTACT_SUPPORT")]
    ContactSupport,
    /// Xid 45: alone, restart Fabric Manager; with another Xid, follow that one.
    #[serde(rename = "WORKFLOW_XID_45")]
    WorkflowXid45,
    /// Xid 48 (double-bit ECC error): a GPU reset or node reboot clears it.
    #[serde(rename = "WORKFLOW_XID_48")]
    WorkflowXid48,
    /// Xid 74 (`NVLink` error): a GPU reset or node reboot clears it.
    #[serde(rename = "WORKFLOW_NVLINK_ERR")]
    WorkflowNvlink,
    /// Xids 144 to 150 (`NVLink5` errors): the action depends on a subcode.
    #[serde(rename = "WORKFLOW_NVLINK5_ERR")]
    WorkflowNvlink5,
    /// Xid 154: the message carries the recovery action.
    #[serde(rename = "XID_154")]
    RecoveryActionChanged,
    /// A code the catalog gives no immediate action for.
    #[serde(rename = "UNLISTED")]
    Unlisted,
}

impl CatalogAction {
    /// Returns the catalog's name for this action.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CatalogAction::Ignore => "IGNORE",
            CatalogAction::RestartApp => "RESTART_APP",
            CatalogAction::ResetGpu => "RESET_GPU",
            CatalogAction::RestartBareMetal => "RESTART_BM",
            CatalogAction::RestartVm => "RESTART_VM",
            CatalogAction::CheckMechanicals => "CHECK_MECHANICALS",
            CatalogAction::UpdateSoftware => "UPDATE_SWFW",
            CatalogAction::CheckUvm => "CHECK_UVM",
            CatalogAction::ContactSupport => "CONTACT_SUPPORT",
            CatalogAction::WorkflowXid45 => "WORKFLOW_XID_45",
            CatalogAction::WorkflowXid48 => "WORKFLOW_XID_48",
            CatalogAction::WorkflowNvlink => "WORKFLOW_NVLINK_ERR",
            CatalogAction::WorkflowNvlink5 => "WORKFLOW_NVLINK5_ERR",
            CatalogAction::RecoveryActionChanged => "XID_154",
            CatalogAction::Unlisted => "UNLISTED",
        }
    }
}

impl fmt::Display for CatalogAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Returns the immediate action of NVIDIA's Xid catalog for Ampere and newer GPUs.
///
/// Source: NVIDIA, "Analyzing Xid Errors with the Xid Catalog",
/// <https://docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html>, column
/// "Resolution Bucket (Immediate Action)", codes 1 to 172. The catalog lists no bucket
/// for 162 to 172. Of those, 162 to 164 report the state of the power-smoothing
/// circuit and the catalog text asks for no reset, so they are read as `IGNORE`. Xids
/// 171 and 172 add detail to an Xid 48 and are read as its workflow.
#[must_use]
pub fn catalog_action(code: u32) -> CatalogAction {
    use CatalogAction::{
        CheckMechanicals, CheckUvm, ContactSupport, Ignore, RecoveryActionChanged, ResetGpu,
        RestartApp, RestartBareMetal, RestartVm, Unlisted, UpdateSoftware, WorkflowNvlink,
        WorkflowNvlink5, WorkflowXid45, WorkflowXid48,
    };
    match code {
        8
        | 11
        | 13
        | 25
        | 31
        | 32
        | 39..=41
        | 60
        | 68..=72
        | 75..=77
        | 80
        | 82..=86
        | 88
        | 89
        | 94
        | 96..=105
        | 126..=135
        | 139 => RestartApp,
        14
        | 37
        | 38
        | 43
        | 44
        | 63
        | 66
        | 67
        | 92
        | 93
        | 106..=108
        | 121
        | 137
        | 141
        | 152
        | 153
        | 157
        | 160
        | 161
        | 162..=164 => Ignore,
        46 | 62 | 64 | 95 | 109 | 110 | 119 | 120 | 136 | 140 | 143 | 155 | 156 | 158 => ResetGpu,
        1..=7
        | 9
        | 10
        | 12
        | 15..=24
        | 26..=30
        | 33..=36
        | 42
        | 47
        | 49..=53
        | 55..=59
        | 61
        | 65
        | 73
        | 81
        | 87
        | 90
        | 91
        | 111..=118
        | 122..=125
        | 138
        | 142 => ContactSupport,
        45 => WorkflowXid45,
        48 | 171 | 172 => WorkflowXid48,
        54 => CheckMechanicals,
        74 => WorkflowNvlink,
        78 => UpdateSoftware,
        79 => RestartBareMetal,
        144..=150 => WorkflowNvlink5,
        151 => RestartVm,
        154 => RecoveryActionChanged,
        159 => CheckUvm,
        _ => Unlisted,
    }
}

/// The recovery action that an Xid 154 line announces ("GPU recovery action changed
/// from 0x0 (None) to 0x2 (Node Reboot Required)"). Values follow NVML's
/// `nvmlDeviceGpuRecoveryAction_t`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryAction {
    /// 0x0: no action needed.
    None,
    /// 0x1: reset the GPU.
    GpuReset,
    /// 0x2: reboot the node.
    NodeReboot,
    /// 0x3: drain peer-to-peer traffic.
    DrainP2p,
    /// 0x4: drain peer-to-peer traffic and reset the GPU.
    DrainAndReset,
    /// 0x5: recover the IMEX domain.
    RecoverImexDomain,
    /// 0x6: reset the GPU's PCI Express bus.
    BusReset,
    /// 0x7: reboot the system.
    SystemReboot,
    /// A value this parser does not know, as printed.
    Unknown(String),
}

/// Reads the new recovery action from an Xid 154 message. Returns `None` when the
/// message does not contain "to 0x".
#[must_use]
pub fn parse_recovery_action(message: &str) -> Option<RecoveryAction> {
    let lower = message.to_ascii_lowercase();
    let start = lower.rfind(" to 0x")? + " to 0x".len();
    let hex: String = lower[start..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    let label = lower[start..]
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(label, _)| label.trim().to_owned())
        .unwrap_or_default();
    let action = match u32::from_str_radix(&hex, 16) {
        Ok(0) => RecoveryAction::None,
        Ok(1) => RecoveryAction::GpuReset,
        Ok(2) => RecoveryAction::NodeReboot,
        Ok(3) => RecoveryAction::DrainP2p,
        Ok(4) => RecoveryAction::DrainAndReset,
        Ok(5) => RecoveryAction::RecoverImexDomain,
        Ok(6) => RecoveryAction::BusReset,
        Ok(7) => RecoveryAction::SystemReboot,
        _ => RecoveryAction::Unknown(if label.is_empty() { hex } else { label }),
    };
    Some(action)
}

/// The verdict for one Xid event and the rule that gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XidClass {
    /// Catalog action for the code.
    pub action: CatalogAction,
    /// Recovery action read from an Xid 154 message.
    pub recovery_action: Option<RecoveryAction>,
    /// Health-check verdict.
    pub verdict: Verdict,
    /// Why, in words.
    pub rule: &'static str,
}

/// Classifies one Xid event.
///
/// A GPU reset cannot be done from inside the health-check task, so every action that
/// resets the GPU or restarts the node becomes [`Verdict::Reboot`]. Application faults
/// (`RESTART_APP`), `IGNORE` and a lone Xid 45 leave the hardware healthy. Xid 64 (row
/// remapping failure) is [`Verdict::Replace`]: the catalog's immediate action is
/// `RESET_GPU` then `CONTACT_SUPPORT`, and NVIDIA's A100 memory error management guide
/// ("Error Recovery and Response Flags") files a row-remapping failure under its RMA
/// policy. Xid 54 (auxiliary power not connected) is also `Replace`, because a reboot
/// cannot connect a cable.
#[must_use]
pub fn xid_verdict(event: &XidEvent) -> XidClass {
    let action = catalog_action(event.code);
    let (verdict, rule) = match (event.code, action) {
        (64, _) => (
            Verdict::Replace,
            "row remapping failed, which NVIDIA's memory error guide treats as an RMA case",
        ),
        (_, CatalogAction::Ignore) => (Verdict::Healthy, "NVIDIA's catalog lists no action"),
        (_, CatalogAction::RestartApp) => (
            Verdict::Healthy,
            "an application fault, for which NVIDIA's catalog action is to restart the application",
        ),
        (_, CatalogAction::WorkflowXid45) => (
            Verdict::Healthy,
            "preemptive cleanup after an application abort, and any other Xid logged with it decides",
        ),
        (_, CatalogAction::WorkflowNvlink5) => (
            // NOTE: the catalog decides these by a subcode that the kernel line does not
            // spell out. Fatal subcodes come with an Xid 154, which carries the action.
            Verdict::Healthy,
            "an NVLink5 event whose accompanying Xid 154, if any, gives the action",
        ),
        (_, CatalogAction::ResetGpu) => (
            Verdict::Reboot,
            "NVIDIA's catalog action is to reset the GPU, which a reboot does",
        ),
        (_, CatalogAction::RestartBareMetal) => (
            Verdict::Reboot,
            "NVIDIA's catalog action is to restart the node",
        ),
        (_, CatalogAction::RestartVm) => (
            Verdict::Reboot,
            "NVIDIA's catalog action is to restart the virtual machine",
        ),
        (_, CatalogAction::WorkflowXid48) => (
            Verdict::Reboot,
            "an uncorrectable ECC error, which a GPU reset or node reboot clears",
        ),
        (_, CatalogAction::WorkflowNvlink) => (
            Verdict::Reboot,
            "an NVLink error, which a GPU reset or node reboot clears",
        ),
        (_, CatalogAction::CheckMechanicals) => (
            Verdict::Replace,
            "the board's auxiliary power is not connected",
        ),
        (_, CatalogAction::RecoveryActionChanged) => {
            let recovery_action = parse_recovery_action(&event.message);
            let (verdict, rule) = recovery_verdict(recovery_action.as_ref());
            return XidClass {
                action,
                recovery_action,
                verdict,
                rule,
            };
        }
        (_, CatalogAction::UpdateSoftware | CatalogAction::CheckUvm) => (
            Verdict::Inconclusive,
            "a driver or software fault, not a GPU fault",
        ),
        (_, CatalogAction::ContactSupport) => (
            Verdict::Inconclusive,
            "NVIDIA's catalog lists this code as unused on current GPUs",
        ),
        (_, CatalogAction::Unlisted) => (
            Verdict::Inconclusive,
            "NVIDIA's catalog gives no action for this code",
        ),
    };
    XidClass {
        action,
        recovery_action: None,
        verdict,
        rule,
    }
}

fn recovery_verdict(action: Option<&RecoveryAction>) -> (Verdict, &'static str) {
    match action {
        Some(RecoveryAction::None) => (Verdict::Healthy, "the driver reports no recovery action"),
        Some(
            RecoveryAction::GpuReset | RecoveryAction::DrainAndReset | RecoveryAction::BusReset,
        ) => (
            Verdict::Reboot,
            "the driver asks for a GPU reset, which a reboot does",
        ),
        Some(RecoveryAction::NodeReboot | RecoveryAction::SystemReboot) => {
            (Verdict::Reboot, "the driver asks for a node reboot")
        }
        Some(RecoveryAction::DrainP2p) => (
            Verdict::Reboot,
            "the driver asks to drain peer-to-peer traffic, which a reboot does",
        ),
        Some(RecoveryAction::RecoverImexDomain) => (
            Verdict::Inconclusive,
            "the driver asks to recover the IMEX domain, which spans more than this node",
        ),
        Some(RecoveryAction::Unknown(_)) | None => (
            Verdict::Inconclusive,
            "the recovery action in the message is not one NVML defines",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xid_line_without_pid_parses() {
        let events = parse_kernel_log(
            "May 18 19:02:39 host kernel: NVRM: Xid (PCI:0000:2b:00): 79, GPU has fallen off the bus.",
        );
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].pci_bus_id, "0000:2b:00");
        assert_eq!(events[0].code, 79);
        assert_eq!(events[0].pid, None);
        assert_eq!(events[0].message, "GPU has fallen off the bus.");
    }

    #[test]
    fn xid_line_without_pci_prefix_parses() {
        let events = parse_kernel_log("[269.5] NVRM: Xid (0000:01:00): 3, C 00000005 SC 00000007");
        assert_eq!(events[0].pci_bus_id, "0000:01:00");
        assert_eq!(events[0].code, 3);
        assert_eq!(events[0].message, "C 00000005 SC 00000007");
    }

    #[test]
    fn kmsg_record_header_ignored() {
        let events =
            parse_kernel_log("4,1021,8421553120,-;NVRM: Xid (PCI:0000:53:00): 48, pid=7, DBE");
        assert_eq!(events[0].code, 48);
        assert_eq!(events[0].pid, Some(7));
        assert_eq!(events[0].message, "DBE");
    }

    #[test]
    fn xid_line_with_bad_code_skipped() {
        assert!(parse_kernel_log("NVRM: Xid (PCI:0000:53:00): x, nothing").is_empty());
        assert!(parse_kernel_log("NVRM: GPU 0000:53:00.0: GPU has fallen off the bus.").is_empty());
    }

    #[test]
    fn recovery_action_reads_hex_value() {
        let parse = parse_recovery_action;
        assert_eq!(
            parse("GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)"),
            Some(RecoveryAction::NodeReboot)
        );
        assert_eq!(
            parse("GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset Required)"),
            Some(RecoveryAction::GpuReset)
        );
        assert_eq!(
            parse("GPU recovery action changed from 0x2 (Node Reboot Required) to 0x0 (None)"),
            Some(RecoveryAction::None)
        );
        assert_eq!(
            parse("recovery action changed from 0x0 (None) to 0x1f (Something New)"),
            Some(RecoveryAction::Unknown("something new".to_owned()))
        );
        assert_eq!(parse("GPU recovery action changed"), None);
    }

    #[test]
    fn catalog_covers_every_listed_code() {
        for code in 1..=161 {
            assert_ne!(catalog_action(code), CatalogAction::Unlisted, "Xid {code}");
        }
        assert_eq!(catalog_action(0), CatalogAction::Unlisted);
        assert_eq!(catalog_action(165), CatalogAction::Unlisted);
        assert_eq!(catalog_action(500), CatalogAction::Unlisted);
    }
}
