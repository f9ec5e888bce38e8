//! Turns what NVIDIA's tools report about a node's GPUs into a health-check verdict.
//!
//! This crate owns the pure part of the health check. It parses `dcgmi diag -j`
//! reports ([`parse_report`]) and NVRM Xid kernel lines ([`parse_kernel_log`]). Its
//! classification tables map DCGM error severities and Xid codes to a [`Verdict`]
//! ([`classify`], [`xid`]). [`assess`] combines them into the [`Assessment`] that the
//! `gpu-health-check` runner prints as one JSON line. The crate spawns no process and
//! does no I/O, so the recovery engine and the simulator call it too.

pub mod assess;
pub mod classify;
pub mod report;
pub mod xid;

pub use assess::{
    AssessInput, Assessment, DcgmiRun, ErrorDetail, FailedTest, FailingGpu, GpuCount, SCHEMA,
    XidFinding, assess, assess_report_text,
};
pub use classify::{ErrorClass, Severity, classify_error};
pub use gpu_recovery_domain::Verdict;
pub use report::{
    DiagError, DiagReport, EntityResult, ReportError, ReportFormat, TestRun, TestStatus,
    TestSummary, parse_report,
};
pub use xid::{
    CatalogAction, RecoveryAction, XidClass, XidEvent, catalog_action, parse_kernel_log,
    parse_recovery_action, xid_verdict,
};
