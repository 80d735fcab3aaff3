//! The README's "Use it as a library" program: one worker on `memory://`,
//! a plugin, leadership, close. `cargo test -p examples --example library`
//! runs it.

use std::sync::Arc;

use coordinator_runtime::{
    async_trait, CoordinatorConfig, CoordinatorPlugin, CoordinatorRegistry, LeaderContext,
    PluginError, StepDownReason,
};

struct Hello;

#[async_trait]
impl CoordinatorPlugin for Hello {
    fn name(&self) -> &str {
        "hello"
    }
    async fn on_become_coordinator(&self, ctx: LeaderContext) -> Result<(), PluginError> {
        println!(
            "{} leads {}, epoch {}",
            ctx.worker_id(),
            ctx.namespace(),
            ctx.epoch()
        );
        Ok(())
    }
    async fn on_stop_being_coordinator(&self, reason: StepDownReason) -> Result<(), PluginError> {
        println!("stopped leading: {reason:?}");
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = coordinator_store::open("memory://").await?; // or "file:///tmp/coord", "s3://…"
    let config = CoordinatorConfig::default().with_worker_id("worker-1");
    let registry = CoordinatorRegistry::new(store, config)?;
    let orders = registry.attach("orders", Arc::new(Hello)).await?;
    orders.leadership().wait_for(|view| view.is_leader).await?;
    println!("leader: {:?}", orders.leader());
    registry.close().await; // releases the lease, deletes the heartbeat
    Ok(())
}

#[test]
fn the_readme_program_runs() {
    main().unwrap();
}

#[test]
fn the_readme_shows_this_program() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let this = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/library.rs"))
        .expect("library.rs");
    let program = &this[this.find("use std::sync::Arc;").unwrap()..this.find("#[test]").unwrap()];
    assert!(
        readme.contains(&format!("```rust\n{}\n```", program.trim_end())),
        "README.md's \"Use it as a library\" block differs from examples/library.rs"
    );
}
