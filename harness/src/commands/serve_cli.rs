//! `stampede fakes serve` at the terminal: the provider on loopback until stopped.

use std::path::Path;
use std::process::ExitCode;

use crate::Exit;

/// `stampede fakes serve`: the provider on loopback for real clients until stopped.
pub fn serve_command(config: Option<&Path>, port_base: u16) -> ExitCode {
    let (lakes, provider, policies) = match config {
        Some(path) => match crate::input::scenario::load(path) {
            Ok(s) => (
                crate::world::lower::lake_directory(&s, s.seed),
                crate::world::lower::provider_config(&s).0,
                stampede_fakes::iam::LakePolicies {
                    trust_system: s.world.lakes.trust_system,
                },
            ),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Usage.into();
            }
        },
        None => (
            stampede_fakes::LakeDirectory {
                seed: 0,
                count: 20,
                tenants: 4,
                regions: vec!["eu-west-1".into()],
                files_per_lake: 2,
                rows_per_file: 500,
            },
            stampede_fakes::ProviderConfig::default(),
            stampede_fakes::iam::LakePolicies::default(),
        ),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("internal error: cannot start the runtime: {e}");
            return Exit::Internal.into();
        }
    };
    runtime.block_on(async {
        let served = match crate::commands::serve::start(lakes, provider, policies, port_base).await
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot listen on 127.0.0.1: {e}");
                return Exit::Usage.into();
            }
        };
        print!("{}", served.exports());
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        eprintln!(
            "serving {} lakes in {}; Ctrl-C stops",
            served.lakes.count, served.region
        );
        let _ = tokio::signal::ctrl_c().await;
        Exit::Pass.into()
    })
}
