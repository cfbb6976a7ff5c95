//! `cauhop`: the whole bridge in one process (signaling, SFU, web client).

mod config;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing::{info, warn};

use cauhop_signaling::auth::JoinKeys;
use cauhop_store::model::{AuditAction, AuditActor, NewAuditEntry};

use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "cauhop",
    version,
    about = "Cầu họp: video-conference bridge for provincial meetings"
)]
struct Cli {
    /// TOML configuration file (see deploy/config.example.toml).
    #[arg(long, short, env = "CAUHOP_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge (the default).
    Serve(ServeArgs),
    /// Print the effective configuration as TOML and exit.
    PrintConfig(ServeArgs),
    /// Manage administrators from the command line (the first one, or a lost password).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Write a consistent copy of the store to FILE while the bridge runs (SQLite).
    Backup {
        file: PathBuf,
        #[arg(long, env = "CAUHOP_DATABASE_URL")]
        database_url: Option<String>,
        /// Also copy the meetings' audio records (`[record] dir`) into this folder. They
        /// can be large, so they are left out unless asked for.
        #[arg(long, value_name = "DIR")]
        with_records: Option<PathBuf>,
    },
    /// Replace the store with a backup FILE. Stop the bridge first.
    Restore {
        file: PathBuf,
        #[arg(long, env = "CAUHOP_DATABASE_URL")]
        database_url: Option<String>,
    },
    /// The keys join links are signed with.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new signing key; the old ones still verify the links already sent, unless
    /// --drop-old (then every link issued so far stops working). Restart the bridge after.
    Rotate {
        #[arg(long)]
        drop_old: bool,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an administrator; the password is read from the terminal (or one line of stdin).
    CreateUser {
        #[arg(long)]
        username: String,
        /// Name shown in the admin pages, e.g. "Văn phòng UBND tỉnh".
        #[arg(long)]
        name: String,
        /// province_admin or district_admin.
        #[arg(long, default_value = "province_admin")]
        role: String,
        /// The district (site id) of a district admin.
        #[arg(long)]
        site: Option<i64>,
        #[arg(long, env = "CAUHOP_DATABASE_URL")]
        database_url: Option<String>,
    },
    /// Set a new password for a user (read like create-user's).
    SetPassword {
        #[arg(long)]
        username: String,
        #[arg(long, env = "CAUHOP_DATABASE_URL")]
        database_url: Option<String>,
    },
}

#[derive(clap::Args, Clone, Default)]
struct ServeArgs {
    /// HTTP address for the page, API and WebSocket [default 127.0.0.1:8080: for the TLS
    /// proxy on this machine].
    #[arg(long, env = "CAUHOP_HTTP_LISTEN")]
    listen: Option<SocketAddr>,
    /// UDP port for all media [default 50000].
    #[arg(long, env = "CAUHOP_SFU_PORT")]
    media_port: Option<u16>,
    /// Local IPs to receive media on, comma-separated [default: all IPv4 addresses].
    #[arg(long, env = "CAUHOP_SFU_LISTEN_IPS", value_delimiter = ',')]
    media_ip: Vec<IpAddr>,
    /// Public IP to advertise to clients (1:1 NAT).
    #[arg(long, env = "CAUHOP_SFU_PUBLIC_IP")]
    public_ip: Option<IpAddr>,
    /// Threads that poll media sessions [default 0: one per core].
    #[arg(long, env = "CAUHOP_SFU_WORKERS")]
    media_workers: Option<usize>,
    /// Serve HTTPS on this address (e.g. 0.0.0.0:443), with a self-signed certificate
    /// made on first run unless [https] in the config names certificate files.
    #[arg(long, env = "CAUHOP_HTTPS_LISTEN")]
    https: Option<SocketAddr>,
    /// Log one JSON object per line.
    #[arg(long, env = "CAUHOP_LOG_JSON")]
    log_json: bool,
    /// Store: sqlite://FILE (default sqlite://cauhop.db) or postgres://…
    #[arg(long, env = "CAUHOP_DATABASE_URL")]
    database_url: Option<String>,
    /// Let anyone open a room by name without a join link (demos, media tests).
    #[arg(long, env = "CAUHOP_AD_HOC")]
    ad_hoc: bool,
}

impl ServeArgs {
    fn apply(&self, c: &mut Config) {
        if let Some(l) = self.listen {
            c.http.listen = l;
        }
        if let Some(p) = self.media_port {
            c.sfu.port = p;
        }
        if !self.media_ip.is_empty() {
            c.sfu.listen_ips = self.media_ip.clone();
        }
        if self.public_ip.is_some() {
            c.sfu.public_ip = self.public_ip;
        }
        if let Some(w) = self.media_workers {
            c.sfu.workers = w;
        }
        if self.https.is_some() {
            c.https.listen = self.https;
        }
        c.log.json |= self.log_json;
        if let Some(u) = &self.database_url {
            c.store.database_url = u.clone();
        }
        c.meetings.ad_hoc |= self.ad_hoc;
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Some(Command::PrintConfig(args)) => {
            cli.serve.apply(&mut config);
            args.apply(&mut config);
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(())
        }
        Some(Command::Serve(args)) => {
            cli.serve.apply(&mut config);
            args.apply(&mut config);
            serve(config)
        }
        None => {
            cli.serve.apply(&mut config);
            serve(config)
        }
        Some(Command::Admin(cmd)) => admin(config, cmd),
        Some(Command::Backup {
            file,
            database_url,
            with_records,
        }) => {
            let url = database_url.unwrap_or(config.store.database_url);
            block_on(async {
                let store = open_store(&url).await?;
                let bytes = store
                    .backup_to(&file)
                    .await
                    .with_context(|| format!("backup to {} failed", file.display()))?;
                println!("đã sao lưu / backed up {bytes} bytes to {}", file.display());
                Ok(())
            })?;
            if let Some(dest) = with_records {
                let (files, bytes) = copy_tree(&config.record.dir, &dest).with_context(|| {
                    format!(
                        "copying the records from {} to {} failed",
                        config.record.dir.display(),
                        dest.display()
                    )
                })?;
                println!(
                    "đã chép / copied {files} record files ({bytes} bytes) to {}",
                    dest.display()
                );
            }
            Ok(())
        }
        Some(Command::Restore { file, database_url }) => {
            restore(&database_url.unwrap_or(config.store.database_url), &file)
        }
        Some(Command::Keys(KeysCommand::Rotate { drop_old })) => {
            let path = &config.store.join_key_file;
            anyhow::ensure!(
                std::env::var_os(JOIN_KEY_ENV).is_none(),
                "{JOIN_KEY_ENV} is set: the key comes from it, not from {}; change it there",
                path.display()
            );
            let keys = JoinKeys::load(path)?.with_context(|| {
                format!(
                    "{} does not exist yet; start the bridge once",
                    path.display()
                )
            })?;
            let rotated = keys.rotated(drop_old);
            rotated.save(path)?;
            let kid = rotated.current().kid.clone();
            let url = config.store.database_url.clone();
            block_on(async move {
                // The key is already rotated: a store that cannot be opened costs the
                // entry, not the rotation.
                match open_store(&url).await {
                    Ok(store) => {
                        let detail = serde_json::json!({ "drop_old": drop_old });
                        cli_audit(&store, AuditAction::JoinKeyRotate, kid, detail).await
                    }
                    Err(e) => warn!("the audit log does not have this rotation: {e:#}"),
                }
                Ok(())
            })?;
            println!(
                "khoá mới / new key {} in {}; {} — restart the bridge",
                rotated.current().kid,
                path.display(),
                if drop_old {
                    "old links no longer work / liên kết cũ hết hiệu lực"
                } else {
                    "old links work until they expire / liên kết cũ dùng đến khi hết hạn"
                }
            );
            Ok(())
        }
    }
}

/// The environment variable that replaces the key file.
const JOIN_KEY_ENV: &str = "CAUHOP_JOIN_KEY";

/// The join-link keys: from `CAUHOP_JOIN_KEY`, else the key file (created on first run);
/// a key an older version kept in the store is moved out of it.
async fn join_keys(config: &Config, store: &cauhop_store::Store) -> anyhow::Result<JoinKeys> {
    use cauhop_signaling::auth::join_keys::{move_out_of_store, too_open};
    if let Ok(secret) = std::env::var(JOIN_KEY_ENV) {
        info!("join links signed with the key from {JOIN_KEY_ENV}");
        let keys = JoinKeys::from_env_secret(&secret)?;
        return Ok(move_out_of_store(store, keys, None).await?);
    }
    let path = &config.store.join_key_file;
    let keys = match JoinKeys::load(path)? {
        Some(keys) => {
            if too_open(path) {
                warn!(
                    file = %path.display(),
                    "the join-link key file is readable by other users; making it owner-only"
                );
                keys.save(path)?;
            }
            keys
        }
        None => {
            let keys = JoinKeys::ephemeral();
            keys.save(path)?;
            info!(file = %path.display(), "created the join-link signing key (owner-only; not in the store or its backups)");
            keys
        }
    };
    Ok(move_out_of_store(store, keys, Some(path)).await?)
}

/// Record an action done on the bridge's machine with the command line, under the
/// system user who ran it.
async fn cli_audit(
    store: &cauhop_store::Store,
    action: AuditAction,
    target: impl std::fmt::Display,
    detail: serde_json::Value,
) {
    let user = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "?".into());
    let entry = NewAuditEntry {
        actor: AuditActor {
            person_id: None,
            name: format!("cli:{user}"),
            client: None,
        },
        action,
        target_id: target.to_string(),
        detail,
    };
    cauhop_signaling::api::audit::write(store, &entry).await;
}

fn block_on(f: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

async fn open_store(url: &str) -> anyhow::Result<cauhop_store::Store> {
    cauhop_store::Store::open(url)
        .await
        .with_context(|| format!("cannot open the store at {url}"))
}

fn read_password() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let pw = if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("Mật khẩu / Password: ")?;
        let b = rpassword::prompt_password("Nhập lại / Again: ")?;
        anyhow::ensure!(a == b, "the two passwords differ");
        a
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    Ok(pw)
}

fn admin(config: Config, cmd: AdminCommand) -> anyhow::Result<()> {
    use cauhop_store::model::PersonRole;
    match cmd {
        AdminCommand::CreateUser {
            username,
            name,
            role,
            site,
            database_url,
        } => {
            let role = match PersonRole::parse(&role) {
                Some(r @ (PersonRole::ProvinceAdmin | PersonRole::DistrictAdmin)) => r,
                _ => anyhow::bail!("--role must be province_admin or district_admin"),
            };
            let password = read_password()?;
            let hash = cauhop_signaling::auth::hash_password(&password)
                .map_err(|e| anyhow::anyhow!("password: {e}"))?;
            let url = database_url.unwrap_or(config.store.database_url);
            block_on(async move {
                let store = open_store(&url).await?;
                let p = store
                    .create_person(&username, &name, role, site, Some(&hash))
                    .await
                    .context("cannot create the user")?;
                cli_audit(
                    &store,
                    AuditAction::PersonCreate,
                    p.id,
                    serde_json::json!({"username": p.username, "role": p.role.as_str(),
                        "site_id": p.site_id, "password": true}),
                )
                .await;
                println!(
                    "đã tạo / created {} ({}), id {}",
                    p.username,
                    p.role.as_str(),
                    p.id
                );
                Ok(())
            })
        }
        AdminCommand::SetPassword {
            username,
            database_url,
        } => {
            let password = read_password()?;
            let hash = cauhop_signaling::auth::hash_password(&password)
                .map_err(|e| anyhow::anyhow!("password: {e}"))?;
            let url = database_url.unwrap_or(config.store.database_url);
            block_on(async move {
                let store = open_store(&url).await?;
                let (p, _) = store
                    .person_for_login(&username)
                    .await?
                    .with_context(|| format!("no user {username}"))?;
                store.set_password(p.id, &hash).await?;
                cli_audit(
                    &store,
                    AuditAction::PersonPassword,
                    p.id,
                    serde_json::json!({"username": p.username}),
                )
                .await;
                println!("đã đổi mật khẩu / password set for {username}");
                Ok(())
            })
        }
    }
}

/// Copy every file under `from` into `to` (folders made as needed); a record still being
/// written is copied as far as it is on disk, which plays up to that point.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    if !from.exists() {
        return Ok((0, 0));
    }
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            let (f, b) = copy_tree(&entry.path(), &target)?;
            files += f;
            bytes += b;
        } else {
            bytes += std::fs::copy(entry.path(), &target)?;
            files += 1;
        }
    }
    Ok((files, bytes))
}

/// Put a backup in place of the store: check it, keep the current file aside, copy.
fn restore(url: &str, backup: &std::path::Path) -> anyhow::Result<()> {
    let target = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(|p| p.split('?').next().unwrap_or(p).to_owned())
        .context("restore works on SQLite stores; for PostgreSQL use pg_restore")?;
    anyhow::ensure!(backup.exists(), "{} does not exist", backup.display());
    let target = std::path::PathBuf::from(target);
    // Check (and bring up to this version's schema) a copy, never the backup itself.
    let staged = target.with_extension("restoring");
    std::fs::copy(backup, &staged)
        .with_context(|| format!("cannot copy {} to {}", backup.display(), staged.display()))?;
    let staged_url = format!("sqlite://{}", staged.display());
    block_on(async {
        let check = open_store(&staged_url).await?;
        let verdict = check.integrity_check().await?;
        check.close().await;
        anyhow::ensure!(verdict == "ok", "the backup is damaged: {verdict}");
        Ok(())
    })?;
    if target.exists() {
        let aside = target.with_extension(format!("before-restore-{}", chrono_stamp()));
        std::fs::rename(&target, &aside)
            .with_context(|| format!("cannot move {} aside", target.display()))?;
        println!("bản cũ / previous store kept as {}", aside.display());
    }
    for ext in ["db-wal", "db-shm"] {
        let _ = std::fs::remove_file(target.with_extension(ext));
    }
    std::fs::rename(&staged, &target)
        .with_context(|| format!("cannot move {} into place", staged.display()))?;
    println!(
        "đã khôi phục / restored {} from {}",
        target.display(),
        backup.display()
    );
    Ok(())
}

fn chrono_stamp() -> i64 {
    cauhop_store::Instant::now().0
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,str0m=warn,dimpl=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    init_logging(config.log.json);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let sfu = cauhop_sfu::start(&config.sfu)
        .await
        .context("cannot start the media server")?;
    let store = open_store(&config.store.database_url).await?;
    let closed = store
        .close_dangling_attendance(cauhop_store::Instant::now())
        .await?;
    if closed > 0 {
        warn!(
            closed,
            "attendance records left open by the last run were closed"
        );
    }
    let certificates = match config.https.listen {
        Some(_) => Some(open_certificates(&config, &sfu)?),
        None => None,
    };
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    for url in &config.webhooks.urls {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            anyhow::bail!("[webhooks] urls: '{url}' is not an http(s):// URL");
        }
    }
    if !config.webhooks.urls.is_empty()
        && config.webhooks.secret.len() < 16
        && std::env::var("CAUHOP_WEBHOOK_SECRET").is_err()
    {
        anyhow::bail!(
            "[webhooks] secret: at least 16 characters (or CAUHOP_WEBHOOK_SECRET), so receivers can tell the bridge's events from forged ones"
        );
    }
    if !(1..=60).contains(&config.history.sample_s) {
        anyhow::bail!(
            "[history] sample_s = {}: a participant's link is sampled every 1 to 60 seconds",
            config.history.sample_s
        );
    }
    let options = cauhop_signaling::Options {
        ad_hoc: config
            .meetings
            .ad_hoc
            .then(|| config.meetings.allowed.clone()),
        schedule: config.meetings.schedule(),
        secure_cookies: config.http.secure_cookies,
        join_keys: join_keys(&config, &store).await?,
        trusted_proxies: cauhop_signaling::client_addr::TrustedProxies(
            config.http.trusted_proxies.clone(),
        ),
        max_per_meeting: config.meetings.max_per_meeting,
        max_participants: config.meetings.max_participants,
        https: certificates.clone(),
        turn: turn(&config)?,
        metrics_token: std::env::var("CAUHOP_METRICS_TOKEN")
            .ok()
            .or_else(|| config.http.metrics_token.clone())
            .filter(|t| !t.is_empty()),
        records: config
            .record
            .enabled
            .then(|| cauhop_signaling::record::RecordOptions {
                dir: config.record.dir.clone(),
                keep_days: config.record.keep_days,
                min_free_bytes: config.record.min_free_mb.saturating_mul(1024 * 1024),
            }),
        history: cauhop_signaling::link_history::HistoryOptions {
            sample_every: std::time::Duration::from_secs(u64::from(config.history.sample_s)),
            keep_days: config.history.keep_days,
        },
        webhooks: cauhop_signaling::webhooks::WebhookOptions {
            urls: config.webhooks.urls.clone(),
            secret: std::env::var("CAUHOP_WEBHOOK_SECRET")
                .ok()
                .unwrap_or_else(|| config.webhooks.secret.clone()),
            unreachable_after: std::time::Duration::from_secs(
                u64::from(config.webhooks.unreachable_after_min) * 60,
            ),
            ..Default::default()
        },
        report: cauhop_signaling::report::ReportOptions {
            after: std::time::Duration::from_secs(u64::from(config.report.after_s)),
            letterhead: config.report.letterhead.clone(),
        },
    };
    let state =
        cauhop_signaling::AppState::new(sfu.clone(), store.clone(), options, shutdown_rx.clone())
            .await
            .context("cannot prepare the signaling state")?;
    if store.count_people().await? == 0 {
        warn!(
            "no administrator yet: create one with `cauhop admin create-user --username NAME --name \"...\"`"
        );
    }
    tokio::spawn(cauhop_signaling::metrics::run(state.clone()));
    let history = tokio::spawn(cauhop_signaling::link_history::run(state.clone()));
    tokio::spawn(cauhop_signaling::webhooks::run(state.clone()));
    if let Some(records) = state.options.records.clone() {
        tokio::spawn(cauhop_signaling::record::keep_pruned(records));
    }
    tokio::spawn(cauhop_signaling::scheduler::run(
        state.clone(),
        shutdown_rx.clone(),
    ));
    let app = cauhop_signaling::app(state);
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.http.listen))?;
    let addr = listener.local_addr()?;
    let port = addr.port();
    info!(media = ?sfu.media_addrs(), "media on UDP port {}", config.sfu.port);
    // Every server stops when the signal came and sessions had a moment to send
    // `meeting_ended`.
    let stopped = {
        let rx = shutdown_rx.clone();
        move || {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
        }
    };
    let https = match (&certificates, config.https.listen) {
        (Some(certs), Some(at)) => {
            let tcp = tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| https_bind_hint(at))?;
            let https_port = tcp.local_addr()?.port();
            // Bound before anything is printed: whoever reads the address can connect.
            let redirect_tcp = match config.https.redirect_listen {
                Some(r) => Some(
                    tokio::net::TcpListener::bind(r)
                        .await
                        .with_context(|| https_bind_hint(r))?,
                ),
                None => None,
            };
            let info = certs.info();
            let host = config
                .https
                .names
                .first()
                .map_or("localhost", |n| n.as_str());
            println!("cauhop đang chạy — mở / open: https://{host}:{https_port}/");
            println!("quản trị / admin:            https://{host}:{https_port}/admin");
            if info.self_signed {
                println!(
                    "chứng chỉ tự ký / self-signed certificate — SHA-256 {}",
                    info.fingerprint_sha256
                );
                println!(
                    "  người dùng so vân tay này với trình duyệt trước khi chấp nhận / users compare this fingerprint with the browser's before accepting"
                );
            }
            info!(%at, fingerprint = %info.fingerprint_sha256, names = ?info.names, not_after = ?info.not_after, self_signed = info.self_signed, "HTTPS on port {https_port}");
            tokio::spawn(
                certs
                    .clone()
                    .watch(std::time::Duration::from_secs(5), shutdown_rx.clone()),
            );
            if config.https.certificate == crate::config::CertificateKind::Acme {
                let h = &config.https;
                let cfg = cauhop_signaling::https::acme::AcmeConfig {
                    directory: h.acme_directory.clone(),
                    contact: h.acme_contact.clone(),
                    ca_file: h.acme_ca_file.clone(),
                    account_file: h.acme_account_file.clone(),
                    renew_before: std::time::Duration::from_secs(30 * 24 * 3600),
                };
                info!(directory = %cfg.directory, names = ?h.names, "certificates from an ACME CA (TLS-ALPN-01 on this port)");
                tokio::spawn(cauhop_signaling::https::acme::run(
                    certs.clone(),
                    cfg,
                    shutdown_rx.clone(),
                ));
            }
            let redirect = match redirect_tcp {
                Some(tcp) => {
                    info!(at = %tcp.local_addr()?, "plain HTTP here redirects to HTTPS");
                    let app = cauhop_signaling::https::redirect_to_https(https_port);
                    Some(tokio::spawn(
                        axum::serve(tcp, app)
                            .with_graceful_shutdown(stopped())
                            .into_future(),
                    ))
                }
                None => None,
            };
            // Media over TCP on this port too, for sites whose network lets only web
            // traffic out (UDP wins wherever it works).
            let ice_tcp = if config.https.ice_tcp {
                sfu.offer_ice_tcp(https_port)
                    .await
                    .context("cannot offer ICE over TCP")?;
                Some(sfu.clone())
            } else {
                None
            };
            let certs = certs.clone();
            let app = app.clone();
            let stop = stopped();
            Some((
                tokio::spawn(async move {
                    cauhop_signaling::https::serve(tcp, &certs, app, ice_tcp, stop).await
                }),
                redirect,
            ))
        }
        _ => None,
    };
    if https.is_none() {
        // Browsers allow camera and microphone only on https or on localhost.
        println!("cauhop đang chạy — mở / open: http://localhost:{port}/");
        println!("quản trị / admin:            http://localhost:{port}/admin");
    }
    if addr.ip().is_loopback() && https.is_none() {
        info!(
            "HTTP listens on {addr} only: other machines reach the bridge over HTTPS \
             (--https 0.0.0.0:443, or [https] in the config file), through an HTTPS proxy \
             on this machine (deploy/README.md), or set http.listen = \"0.0.0.0:{port}\" \
             on a trusted LAN"
        );
    }
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down: telling clients the meeting ended");
        let _ = shutdown_tx.send(true);
    });
    let plain = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stopped());
    plain.await.context("HTTP server failed")?;
    if let Some((server, redirect)) = https {
        server
            .await
            .context("HTTPS server task failed")?
            .context("HTTPS server failed")?;
        if let Some(r) = redirect {
            r.await
                .context("redirect server task failed")?
                .context("redirect server failed")?;
        }
    }
    // The link samples of the last minute are kept as the bridge stops.
    if tokio::time::timeout(std::time::Duration::from_secs(5), history)
        .await
        .is_err()
    {
        warn!("the last link samples were not kept in time");
    }
    info!("stopped");
    Ok(())
}

/// The bridge's certificate for HTTPS: the configured files, or a self-signed one made
/// on first run for the configured names plus the media addresses.
fn open_certificates(
    config: &Config,
    sfu: &cauhop_sfu::SfuHandle,
) -> anyhow::Result<std::sync::Arc<cauhop_signaling::https::Certificates>> {
    use crate::config::CertificateKind;
    use cauhop_signaling::https::{Certificates, Source};
    let h = &config.https;
    let source = match h.certificate {
        CertificateKind::Files => Source::Files {
            cert: h.cert_file.clone(),
            key: h.key_file.clone(),
        },
        CertificateKind::Acme => {
            anyhow::ensure!(
                !h.names.is_empty(),
                "[https] certificate = \"acme\" needs names: the bridge's public host names"
            );
            Source::Acme {
                cert: h.cert_file.clone(),
                key: h.key_file.clone(),
                names: h.names.clone(),
            }
        }
        CertificateKind::SelfSigned => {
            let mut names = h.names.clone();
            let media = sfu
                .media_addrs()
                .iter()
                .map(|a| a.ip())
                .chain(config.sfu.public_ip);
            for ip in media {
                let ip = ip.to_string();
                if !ip.starts_with("0.") && !names.contains(&ip) {
                    names.push(ip);
                }
            }
            Source::SelfSigned {
                cert: h.cert_file.clone(),
                key: h.key_file.clone(),
                names,
            }
        }
    };
    Certificates::open(source).context(
        "cannot set up HTTPS ([https] in the config file: certificate, cert_file, key_file)",
    )
}

/// The TURN servers clients are told about, with the secret shared with them.
fn turn(config: &Config) -> anyhow::Result<Option<cauhop_signaling::turn::Turn>> {
    let t = &config.turn;
    if t.urls.is_empty() {
        return Ok(None);
    }
    let secret = std::env::var("CAUHOP_TURN_SECRET").unwrap_or_else(|_| t.secret.clone());
    anyhow::ensure!(
        secret.len() >= 16,
        "[turn] urls are set but the secret is missing or shorter than 16 characters: set \
         turn.secret (or CAUHOP_TURN_SECRET) to coturn's static-auth-secret"
    );
    for u in &t.urls {
        anyhow::ensure!(
            u.starts_with("turn:") || u.starts_with("turns:"),
            "[turn] url {u:?} must start with turn: or turns:"
        );
    }
    info!(urls = ?t.urls, "TURN servers handed to clients");
    Ok(Some(cauhop_signaling::turn::Turn {
        urls: t.urls.clone(),
        secret,
        ttl: std::time::Duration::from_secs(u64::from(t.ttl_minutes.max(1)) * 60),
    }))
}

fn https_bind_hint(at: SocketAddr) -> String {
    if at.port() < 1024 {
        format!(
            "cannot listen on {at}: ports below 1024 need CAP_NET_BIND_SERVICE (the packaged \
             systemd unit has it) or root; or use a port such as 8443"
        )
    } else {
        format!("cannot listen on {at}")
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
