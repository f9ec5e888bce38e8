//! Xid lines of the kernel log sample and the verdict each gives.

use gpu_recovery_dcgm::{
    AssessInput, CatalogAction, RecoveryAction, Verdict, XidEvent, assess, parse_kernel_log,
    xid_verdict,
};

const XID_LINES: &str = include_str!("fixtures/kernel-xid-lines.txt");

fn event(code: u32, message: &str) -> XidEvent {
    XidEvent {
        pci_bus_id: "0000:9b:00".to_owned(),
        code,
        pid: None,
        process_name: None,
        message: message.to_owned(),
    }
}

fn worst_xid_verdict(events: &[XidEvent]) -> Verdict {
    events
        .iter()
        .map(|e| xid_verdict(e).verdict)
        .fold(Verdict::Healthy, Verdict::worst)
}

#[test]
fn sample_lines_parse_with_fields() {
    let events = parse_kernel_log(XID_LINES);
    let codes: Vec<u32> = events.iter().map(|e| e.code).collect();
    assert_eq!(
        codes,
        vec![79, 154, 48, 63, 154, 13, 43, 74, 45, 119, 95, 94]
    );

    let fallen = &events[0];
    assert_eq!(fallen.pci_bus_id, "0000:53:00");
    assert_eq!(fallen.pid, None, "pid='<unknown>' is no pid");
    assert_eq!(fallen.process_name, None);
    assert_eq!(fallen.message, "GPU has fallen off the bus.");

    let dbe = &events[2];
    assert_eq!(dbe.pci_bus_id, "0000:a8:00");
    assert_eq!(dbe.pid, Some(41233));
    assert_eq!(dbe.process_name.as_deref(), Some("python3"));
    assert!(
        dbe.message
            .starts_with("Ch 00000010, An uncorrectable double bit error")
    );

    let app_fault = &events[6];
    assert_eq!(app_fault.code, 43);
    assert_eq!(app_fault.message, "Ch 00000008");
}

#[test]
fn sample_lines_map_to_catalog_verdicts() {
    let events = parse_kernel_log(XID_LINES);
    let expected = [
        (79, CatalogAction::RestartBareMetal, Verdict::Reboot),
        (154, CatalogAction::RecoveryActionChanged, Verdict::Reboot),
        (48, CatalogAction::WorkflowXid48, Verdict::Reboot),
        (63, CatalogAction::Ignore, Verdict::Healthy),
        (154, CatalogAction::RecoveryActionChanged, Verdict::Reboot),
        (13, CatalogAction::RestartApp, Verdict::Healthy),
        (43, CatalogAction::Ignore, Verdict::Healthy),
        (74, CatalogAction::WorkflowNvlink, Verdict::Reboot),
        (45, CatalogAction::WorkflowXid45, Verdict::Healthy),
        (119, CatalogAction::ResetGpu, Verdict::Reboot),
        (95, CatalogAction::ResetGpu, Verdict::Reboot),
        (94, CatalogAction::RestartApp, Verdict::Healthy),
    ];
    assert_eq!(events.len(), expected.len());
    for (event, (code, action, verdict)) in events.iter().zip(expected) {
        let class = xid_verdict(event);
        assert_eq!(event.code, code);
        assert_eq!(class.action, action, "Xid {code}");
        assert_eq!(class.verdict, verdict, "Xid {code}");
    }
}

#[test]
fn xid_154_reads_recovery_action() {
    let events = parse_kernel_log(XID_LINES);
    assert_eq!(
        xid_verdict(&events[1]).recovery_action,
        Some(RecoveryAction::NodeReboot)
    );
    assert_eq!(
        xid_verdict(&events[4]).recovery_action,
        Some(RecoveryAction::GpuReset)
    );
    let cleared = event(
        154,
        "GPU recovery action changed from 0x1 (GPU Reset Required) to 0x0 (None)",
    );
    assert_eq!(xid_verdict(&cleared).verdict, Verdict::Healthy);
    let garbled = event(154, "GPU recovery action changed");
    assert_eq!(xid_verdict(&garbled).verdict, Verdict::Inconclusive);
}

#[test]
fn application_faults_alone_healthy() {
    let events: Vec<XidEvent> = parse_kernel_log(XID_LINES)
        .into_iter()
        .filter(|e| e.pci_bus_id == "0000:07:00")
        .collect();
    assert_eq!(
        events.iter().map(|e| e.code).collect::<Vec<_>>(),
        vec![13, 43]
    );
    assert_eq!(worst_xid_verdict(&events), Verdict::Healthy);
    for code in [13, 31, 43, 45] {
        assert_eq!(
            xid_verdict(&event(code, "")).verdict,
            Verdict::Healthy,
            "Xid {code}"
        );
    }
}

#[test]
fn listed_hardware_xids_verdicts() {
    let cases = [
        (48, Verdict::Reboot),
        (63, Verdict::Healthy),
        (64, Verdict::Replace),
        (74, Verdict::Reboot),
        (79, Verdict::Reboot),
        (92, Verdict::Healthy),
        (94, Verdict::Healthy),
        (95, Verdict::Reboot),
        (119, Verdict::Reboot),
        (120, Verdict::Reboot),
        (136, Verdict::Reboot),
        (54, Verdict::Replace),
        (78, Verdict::Inconclusive),
        (2, Verdict::Inconclusive),
        (999, Verdict::Inconclusive),
    ];
    for (code, verdict) in cases {
        assert_eq!(xid_verdict(&event(code, "")).verdict, verdict, "Xid {code}");
    }
}

#[test]
fn sample_kernel_log_node_reboots() {
    let input = AssessInput {
        report: Some(gpu_recovery_dcgm::parse_report(include_str!(
            "fixtures/diag-r2-h100-8gpu-pass.json"
        ))),
        xid_events: parse_kernel_log(XID_LINES),
        ..AssessInput::default()
    };
    let assessment = assess(&input);
    assert_eq!(assessment.verdict, Verdict::Reboot);
    assert_eq!(assessment.xids.len(), 12);
    let fallen = &assessment.xids[0];
    assert_eq!(
        (fallen.code, fallen.count, fallen.verdict),
        (79, 1, Verdict::Reboot)
    );
    assert!(assessment.reasons[0].starts_with("Xid 79 on PCI 0000:53:00"));
}

#[test]
fn repeated_xids_grouped_with_count() {
    let line =
        "NVRM: Xid (PCI:0000:07:00): 13, pid=5120, name=python3, Graphics SM Warp Exception\n";
    let events = parse_kernel_log(&line.repeat(500));
    let input = AssessInput {
        report: Some(gpu_recovery_dcgm::parse_report(include_str!(
            "fixtures/diag-r2-h100-8gpu-pass.json"
        ))),
        xid_events: events,
        ..AssessInput::default()
    };
    let assessment = assess(&input);
    assert_eq!(assessment.verdict, Verdict::Healthy);
    assert_eq!(assessment.xids.len(), 1);
    assert_eq!(assessment.xids[0].count, 500);
}
