//! Building and running the server: connect, migrate, load secrets and signing keys,
//! bootstrap, start housekeeping and the session writer, bind (port 0 allowed), serve until
//! SIGINT/SIGTERM, then commit the queued sessions and flush the audit log.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::{Server, Service};
use actix_web::middleware::{Condition, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::audit::AuditLog;
use crate::auth::cache::{Directory, VerifiedTokens};
use crate::auth::cross_org::CrossOrg;
use crate::auth::dpop::{
    Dpop, MemoryReplayStore, Nonces, PublicUrl, RedisReplayStore, ReplayStore,
};
use crate::auth::federation::Federation;
use crate::auth::revocation::Revocations;
use crate::auth::throttle::{Throttle, TrustedProxies};
use crate::bootstrap::{self, BootstrapCredentials};
use crate::clock::Clock;
use crate::config::{DpopSettings, ReplayStoreKind, Settings};
use crate::housekeeping;
use crate::http::{self, request_id};
use crate::limits::{LimitStore, Limits, MemoryLimitStore, RedisLimitStore};
use crate::metrics;
use crate::outbound::AddressPolicy;
use crate::people::mail::Mailer;
use crate::secrets::Secrets;
use crate::signing_keys::SigningKeys;
use crate::state::AppState;
use crate::storage::Storage;
use crate::storage::writer::{BatchLimits, SessionWriter};

pub struct Application {
    server: Server,
    state: AppState,
    local_addr: SocketAddr,
    bootstrap: Option<BootstrapCredentials>,
    /// The periodic purge of expired rows (`housekeeping.interval`), stopped with the server.
    housekeeping: Option<tokio::task::JoinHandle<()>>,
    /// The metrics upkeep and the `metrics.bind` listener, stopped with the server.
    metrics_tasks: MetricsTasks,
}

/// What serves and maintains metrics besides the main listener.
#[derive(Default)]
struct MetricsTasks {
    upkeep: Option<tokio::task::JoinHandle<()>>,
    server: Option<actix_web::dev::ServerHandle>,
    addr: Option<SocketAddr>,
}

/// Starts the histogram upkeep and, with `metrics.bind`, the listener that serves only
/// `/metrics` (one worker: a scrape is rare and cheap).
fn spawn_metrics(state: &AppState, listener: Option<TcpListener>) -> anyhow::Result<MetricsTasks> {
    let Some(metrics) = state.metrics.clone() else {
        return Ok(MetricsTasks::default());
    };
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::metrics::UPKEEP_INTERVAL);
        loop {
            tick.tick().await;
            metrics.upkeep();
        }
    });
    let mut tasks = MetricsTasks {
        upkeep: Some(upkeep),
        ..MetricsTasks::default()
    };
    if let Some(listener) = listener {
        tasks.addr = Some(listener.local_addr()?);
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .configure(http::metrics::own_routes)
        })
        .listen(listener)?
        .workers(1)
        .disable_signals()
        .run();
        tasks.server = Some(server.handle());
        tokio::spawn(server);
        tracing::info!(address = ?tasks.addr, "serving /metrics");
    }
    Ok(tasks)
}

/// Connects to the database and applies migrations.
pub async fn open_storage(settings: &Settings) -> anyhow::Result<Storage> {
    let storage = Storage::connect(settings)
        .await
        .context("connecting to the database")?;
    storage.migrate().await.context("running migrations")?;
    Ok(storage)
}

impl Application {
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let replay = replay_store(&settings.dpop, clock.clone()).await?;
        Self::build_with_replay_store(settings, clock, replay).await
    }

    /// [`Application::build`] with a given DPoP replay store instead of the configured one
    /// (tests wrap the real store to watch what it is asked).
    pub async fn build_with_replay_store(
        settings: Settings,
        clock: Arc<dyn Clock>,
        replay: Arc<dyn ReplayStore>,
    ) -> anyhow::Result<Self> {
        let storage = open_storage(&settings).await?;
        let secrets = Secrets::load(&settings).context("loading secrets")?;
        let kek = Arc::new(secrets.kek);
        let signing_keys = SigningKeys::load(
            storage.clone(),
            kek.clone(),
            clock.clone(),
            settings.tokens.alg,
        )
        .await
        .context("loading signing keys")?;

        let listener = TcpListener::bind(&settings.server.bind)
            .with_context(|| format!("binding {}", settings.server.bind))?;
        let local_addr = listener.local_addr()?;
        let public_url = settings
            .server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{local_addr}"))
            .trim_end_matches('/')
            .to_owned();

        settings.docs.dpop_proxy().map_err(anyhow::Error::msg)?;
        let mailer = Mailer::from_settings(&settings.smtp, &public_url)?;
        let metrics = if settings.metrics.enabled {
            Some(metrics::install()?)
        } else {
            None
        };
        let metrics_listener = match (&metrics, &settings.metrics.bind) {
            (Some(_), Some(bind)) => Some(
                TcpListener::bind(bind).with_context(|| format!("binding metrics.bind {bind}"))?,
            ),
            _ => None,
        };
        let pepper = Arc::new(secrets.pepper);
        let dpop = Dpop::new(
            &settings.dpop,
            PublicUrl::parse(&public_url)?,
            replay,
            Nonces::new(pepper.clone(), settings.dpop.nonce_window),
        );
        let proxies = TrustedProxies::parse(&settings.server.trusted_proxies)?;
        let revocations = Arc::new(Revocations::new(100_000, clock.clone()));
        let directory = Arc::new(Directory::new(100_000, clock.clone()));
        let verified_tokens = Arc::new(VerifiedTokens::new(100_000, clock.clone()));
        let identity_keys = Arc::new(crate::identity::IdentityKeys::new(
            storage.clone(),
            kek.clone(),
            clock.clone(),
        ));
        let registrations = Arc::new(
            crate::registration::Registrations::new(&settings.registration, clock.clone())
                .map_err(anyhow::Error::msg)?,
        );
        let limits = Limits::new(
            &settings.limits,
            limit_store(&settings.dpop).await?,
            clock.clone(),
        );
        let state = AppState {
            limits,
            throttle: Arc::new(Throttle::new(&settings.limits, proxies, clock.clone())),
            cross_org: CrossOrg::new(&settings.cross_org, clock.clone()),
            federation: Federation::new(
                &settings.federation,
                AddressPolicy::for_bind(&settings.server.bind),
                clock.clone(),
            )
            .context("building the identity providers' HTTP client")?,
            clients: crate::clients::Clients::new(
                &settings.clients,
                AddressPolicy::for_bind(&settings.server.bind),
                clock.clone(),
            )
            .context("building the client metadata documents' HTTP client")?,
            audit: AuditLog::spawn(
                storage.clone(),
                clock.clone(),
                settings.audit.queue_capacity,
            ),
            sessions: SessionWriter::spawn(
                storage.clone(),
                BatchLimits {
                    max_rows: settings.database.batch_max_rows,
                    max_wait: settings.database.batch_max_wait,
                },
                clock.clone(),
            ),
            settings: Arc::new(settings),
            storage,
            clock,
            pepper,
            dpop,
            revocations,
            directory,
            verified_tokens,
            kek,
            signing_keys: Arc::new(signing_keys),
            public_url,
            mailer,
            metrics,
            identity_keys,
            registrations,
        };
        let bootstrap = bootstrap::run(&state, &state.settings)
            .await
            .context("first-start bootstrap")?;

        let housekeeping = housekeeping::spawn(state.clone());
        let metrics_tasks = spawn_metrics(&state, metrics_listener)?;

        let data = web::Data::new(state.clone());
        let record = state.metrics.is_some();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .configure(http::routes)
                .wrap(from_fn(http::dpop_nonce_middleware))
                .wrap(Condition::new(
                    record,
                    from_fn(http::metrics::record_middleware),
                ))
                .wrap_fn(|req, srv| {
                    let id = request_id::of(&req);
                    request_id::scope(id, srv.call(req))
                })
                .wrap(TracingLogger::<request_id::KeygateRootSpan>::new())
        })
        .listen(listener)?
        .shutdown_timeout(10)
        .shutdown_signal(stop_signal());
        if let Some(workers) = state.settings.server.workers {
            server = server.workers(workers);
        }
        let server = server.run();

        tracing::info!(address = %local_addr, public_url = %state.public_url, "listening");
        Ok(Self {
            server,
            state,
            local_addr,
            bootstrap,
            housekeeping,
            metrics_tasks,
        })
    }

    /// The address of the `metrics.bind` listener, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_tasks.addr
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The first-start credentials, if this start created them (only once).
    pub fn take_bootstrap_credentials(&mut self) -> Option<BootstrapCredentials> {
        self.bootstrap.take()
    }

    /// Serves until SIGINT or SIGTERM (graceful: in-flight requests finish), then commits
    /// the sessions still queued and writes out the audit events still queued.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        if let Some(task) = self.housekeeping {
            task.abort();
        }
        if let Some(task) = self.metrics_tasks.upkeep {
            task.abort();
        }
        if let Some(server) = self.metrics_tasks.server {
            server.stop(true).await;
        }
        // A request cut off by the shutdown timeout may have handed over rows: commit them.
        self.state.sessions.drain().await;
        self.state.audit.flush().await;
        tracing::info!("stopped");
        result
    }
}

/// SIGINT (Ctrl-C) and SIGTERM both stop the server gracefully: in-flight requests finish
/// (up to the shutdown timeout), then the audit log is flushed.
async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut stream) => {
                    stream.recv().await;
                }
                Err(err) => {
                    tracing::error!(error = %err, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = interrupt => tracing::info!("SIGINT received; stopping gracefully"),
            () = terminate => tracing::info!("SIGTERM received; stopping gracefully"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Where the rate limits keep their counters: the replay store's Redis (same URL and key
/// prefix) in a fleet, else this node's memory. Redis must answer at start.
pub async fn limit_store(settings: &DpopSettings) -> anyhow::Result<Arc<dyn LimitStore>> {
    Ok(
        match (&settings.replay_store, settings.redis_url.as_deref()) {
            (ReplayStoreKind::Redis, Some(url)) => Arc::new(
                RedisLimitStore::connect(url, &settings.redis_prefix)
                    .await
                    .map_err(anyhow::Error::msg)
                    .context("connecting to the rate limits' Redis (dpop.redis_url)")?,
            ),
            _ => Arc::new(MemoryLimitStore::new()),
        },
    )
}

/// The configured DPoP replay store; Redis must answer at start. The in-memory store
/// expires its entries on `clock`, the clock that judges a proof's age.
pub async fn replay_store(
    settings: &DpopSettings,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<dyn ReplayStore>> {
    Ok(match settings.replay_store {
        ReplayStoreKind::Memory => {
            Arc::new(MemoryReplayStore::new(settings.replay_capacity, clock))
        }
        ReplayStoreKind::Redis => {
            let url = settings
                .redis_url
                .as_deref()
                .context("dpop.replay_store = \"redis\" needs dpop.redis_url")?;
            Arc::new(
                RedisReplayStore::connect(url, &settings.redis_prefix)
                    .await
                    .context("connecting to the DPoP replay store (dpop.redis_url)")?,
            )
        }
    })
}
