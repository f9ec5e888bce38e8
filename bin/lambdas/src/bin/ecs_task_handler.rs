//! ECS Task Handler: training task STOPPED and RUNNING events.

use gpu_recovery_service::functions::EntryPoint;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    gpu_recovery_lambda::run(EntryPoint::EcsTaskHandler).await
}
