//! The commands that operate a deployment on AWS: `tables create`, `submit`
//! and `status`. They read the same environment variables as the Lambda
//! functions (`TASK_TABLE_NAME`, `ECS_CLUSTER_NAME`, ...) and reach AWS
//! through the standard SDK configuration, so `AWS_PROFILE`, `AWS_REGION`
//! and `AWS_ENDPOINT_URL` work as they do for the AWS CLI.

// The argument docs are clap's help text, where backticks around variable
// names such as TASK_TABLE_NAME would be printed as they are.
#![allow(clippy::doc_markdown)]

mod render;
pub mod status;
pub mod submit;
pub mod tables;

use std::future::Future;
use std::io::Write;
use std::process::ExitCode;

/// Runs one command on a single-threaded runtime and turns its error into
/// a message on standard error and exit code 1.
fn block_on(command: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: failed to start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes text to standard output. A reader that went away, such as
/// `head` or `grep -q`, ends the output without an error.
fn emit(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(error).context("failed to write to standard output"))
        }
        _ => Ok(()),
    }
}
