//! How roadtest's clients reach a cluster that needs it: Kafka security protocol, SASL login and TLS files; CQL login and TLS.
//!
//! The same flags configure `roadtest run --target external` and the consumer it starts
//! (`roadtest ingest`): [`KafkaSecurityArgs`] and [`CqlSecurityArgs`] are flattened into both, and
//! [`KafkaSecurity::to_args`] hands the parent's settings to the child. Passwords are never
//! flags or file contents (flags show in `ps`): they come only from the environment,
//! [`KAFKA_PASSWORD_ENV`] and [`CQL_PASSWORD_ENV`], which roadtest sets for the consumer it starts.
//!
//! TLS files are PEM. Kafka (librdkafka, OpenSSL) verifies the broker's certificate chain and
//! host name; the CQL driver (scylla with OpenSSL) verifies the chain only: it never checks host
//! names, which is also why its connections can pass through roadtest's fault proxy.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use openssl::ssl::{SslContext, SslContextBuilder, SslFiletype, SslMethod, SslVerifyMode};
use rdkafka::ClientConfig;

/// The environment variable holding the Kafka SASL password.
pub const KAFKA_PASSWORD_ENV: &str = "ROADTEST_KAFKA_PASSWORD";
/// The environment variable holding the CQL password.
pub const CQL_PASSWORD_ENV: &str = "ROADTEST_CQL_PASSWORD";

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KafkaProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl KafkaProtocol {
    /// The name librdkafka expects.
    pub fn config_name(self) -> &'static str {
        match self {
            KafkaProtocol::Plaintext => "plaintext",
            KafkaProtocol::Ssl => "ssl",
            KafkaProtocol::SaslPlaintext => "sasl_plaintext",
            KafkaProtocol::SaslSsl => "sasl_ssl",
        }
    }

    /// The name on the command line.
    pub fn flag_name(self) -> &'static str {
        match self {
            KafkaProtocol::Plaintext => "plaintext",
            KafkaProtocol::Ssl => "ssl",
            KafkaProtocol::SaslPlaintext => "sasl-plaintext",
            KafkaProtocol::SaslSsl => "sasl-ssl",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, KafkaProtocol::Ssl | KafkaProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, KafkaProtocol::SaslPlaintext | KafkaProtocol::SaslSsl)
    }
}

/// Kafka's `sasl.mechanism` (the ones librdkafka has built in; GSSAPI/Kerberos is not offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    /// The name librdkafka expects.
    pub fn config_name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The name on the command line.
    pub fn flag_name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "plain",
            SaslMechanism::ScramSha256 => "scram-sha256",
            SaslMechanism::ScramSha512 => "scram-sha512",
        }
    }
}

/// A password; its `Debug` output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A user name and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub username: String,
    pub password: Password,
}

/// PEM files for TLS: the CA to trust (else the system's trust store) and, for mutual TLS, this
/// client's certificate chain and private key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// How Kafka clients authenticate and encrypt. The default is plaintext, as on the local and
/// containers targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaSecurity {
    pub protocol: KafkaProtocol,
    /// Set for the `sasl-*` protocols.
    pub sasl: Option<(SaslMechanism, Login)>,
    /// Used by the `ssl` and `sasl-ssl` protocols.
    pub tls: TlsFiles,
}

impl KafkaSecurity {
    /// Adds the security settings to a librdkafka configuration (nothing for plaintext).
    pub fn apply(&self, config: &mut ClientConfig) {
        if self.protocol == KafkaProtocol::Plaintext {
            return;
        }
        config.set("security.protocol", self.protocol.config_name());
        if let Some((mechanism, login)) = &self.sasl {
            config
                .set("sasl.mechanism", mechanism.config_name())
                .set("sasl.username", &login.username)
                .set("sasl.password", login.password.expose());
        }
        for (key, path) in [
            ("ssl.ca.location", &self.tls.ca),
            ("ssl.certificate.location", &self.tls.cert),
            ("ssl.key.location", &self.tls.key),
        ] {
            if let Some(path) = path {
                config.set(key, path.display().to_string());
            }
        }
    }

    /// The flags that give a child process (`roadtest ingest`) these settings; the password
    /// reaches it through its environment ([`KAFKA_PASSWORD_ENV`], set by the external target).
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args = Vec::new();
        if self.protocol != KafkaProtocol::Plaintext {
            push(
                &mut args,
                "--kafka-security-protocol",
                self.protocol.flag_name(),
            );
        }
        if let Some((mechanism, login)) = &self.sasl {
            push(&mut args, "--kafka-sasl-mechanism", mechanism.flag_name());
            push(&mut args, "--kafka-username", &login.username);
        }
        push_paths(
            &mut args,
            [
                ("--kafka-ca-file", &self.tls.ca),
                ("--kafka-cert-file", &self.tls.cert),
                ("--kafka-key-file", &self.tls.key),
            ],
        );
        args
    }

    /// The same settings as the environment a consumer of the user's own reads (README, "Your
    /// own consumer"), in librdkafka's spelling; the password included.
    pub fn to_env(&self) -> Vec<(OsString, OsString)> {
        let mut env = vec![variable(
            "ROADTEST_KAFKA_SECURITY_PROTOCOL",
            self.protocol.config_name(),
        )];
        if let Some((mechanism, login)) = &self.sasl {
            env.push(variable(
                "ROADTEST_KAFKA_SASL_MECHANISM",
                mechanism.config_name(),
            ));
            env.push(variable("ROADTEST_KAFKA_USERNAME", &login.username));
            env.push(variable(KAFKA_PASSWORD_ENV, login.password.expose()));
        }
        env.extend(path_variables("ROADTEST_KAFKA", &self.tls));
        env
    }
}

fn variable(name: &str, value: impl Into<OsString>) -> (OsString, OsString) {
    (name.into(), value.into())
}

/// `PREFIX_CA_FILE`, `PREFIX_CERT_FILE` and `PREFIX_KEY_FILE`, for the files that are given.
fn path_variables(prefix: &str, files: &TlsFiles) -> Vec<(OsString, OsString)> {
    [
        ("CA", &files.ca),
        ("CERT", &files.cert),
        ("KEY", &files.key),
    ]
    .into_iter()
    .filter_map(|(name, path)| {
        let path = path.as_ref()?;
        Some(variable(&format!("{prefix}_{name}_FILE"), absolute(path)))
    })
    .collect()
}

/// How CQL sessions authenticate and encrypt. The default: no login, no TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CqlSecurity {
    pub login: Option<Login>,
    /// `Some`: connect with TLS.
    pub tls: Option<TlsFiles>,
}

impl CqlSecurity {
    /// The OpenSSL context the CQL driver connects with: peer verification on, the given CA (else
    /// the system's trust store), the client certificate and key when given.
    pub fn ssl_context(&self) -> Result<Option<SslContext>, SecurityError> {
        let Some(files) = &self.tls else {
            return Ok(None);
        };
        let tls_error = |what: &str, path: Option<&Path>| {
            let what = match path {
                Some(path) => format!("{what} {}", path.display()),
                None => what.to_string(),
            };
            move |source| SecurityError::Tls { what, source }
        };
        let mut builder = SslContextBuilder::new(SslMethod::tls_client())
            .map_err(tls_error("create a TLS context", None))?;
        builder.set_verify(SslVerifyMode::PEER);
        match &files.ca {
            Some(ca) => builder
                .set_ca_file(ca)
                .map_err(tls_error("--cql-ca-file", Some(ca)))?,
            None => builder
                .set_default_verify_paths()
                .map_err(tls_error("the system's trust store", None))?,
        }
        if let (Some(cert), Some(key)) = (&files.cert, &files.key) {
            builder
                .set_certificate_chain_file(cert)
                .map_err(tls_error("--cql-cert-file", Some(cert)))?;
            builder
                .set_private_key_file(key, SslFiletype::PEM)
                .map_err(tls_error("--cql-key-file", Some(key)))?;
            builder.check_private_key().map_err(tls_error(
                "--cql-key-file does not match --cql-cert-file",
                None,
            ))?;
        }
        Ok(Some(builder.build()))
    }

    /// The flags that give a child process these settings (the password: [`CQL_PASSWORD_ENV`]).
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args = Vec::new();
        if let Some(login) = &self.login {
            push(&mut args, "--cql-username", &login.username);
        }
        if let Some(files) = &self.tls {
            args.push("--cql-tls".into());
            push_paths(
                &mut args,
                [
                    ("--cql-ca-file", &files.ca),
                    ("--cql-cert-file", &files.cert),
                    ("--cql-key-file", &files.key),
                ],
            );
        }
        args
    }

    /// The same settings as the environment a consumer of the user's own reads: login and
    /// password when there is one; `ROADTEST_CQL_TLS=1` and the files when TLS is on.
    pub fn to_env(&self) -> Vec<(OsString, OsString)> {
        let mut env = Vec::new();
        if let Some(login) = &self.login {
            env.push(variable("ROADTEST_CQL_USERNAME", &login.username));
            env.push(variable(CQL_PASSWORD_ENV, login.password.expose()));
        }
        if let Some(files) = &self.tls {
            env.push(variable("ROADTEST_CQL_TLS", "1"));
            env.extend(path_variables("ROADTEST_CQL", files));
        }
        env
    }
}

/// A security setting is missing, contradicts another or cannot be read; the message names the
/// flag (or environment variable) and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("{flag}: {problem}")]
    Invalid { flag: &'static str, problem: String },
    #[error("TLS: cannot use {what}: {source}")]
    Tls {
        what: String,
        source: openssl::error::ErrorStack,
    },
}

fn invalid(flag: &'static str, problem: impl Into<String>) -> SecurityError {
    SecurityError::Invalid {
        flag,
        problem: problem.into(),
    }
}

/// Kafka security flags (`roadtest run --target external`, `roadtest ingest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Kafka security")]
pub struct KafkaSecurityArgs {
    /// Kafka security protocol [default: plaintext]
    ///
    /// SASL passwords come from the environment variable ROADTEST_KAFKA_PASSWORD, never from a
    /// flag.
    #[arg(
        long = "kafka-security-protocol",
        id = "kafka-security-protocol",
        value_enum,
        value_name = "PROTOCOL"
    )]
    pub protocol: Option<KafkaProtocol>,
    /// SASL mechanism (needed by the sasl-* protocols).
    #[arg(
        long = "kafka-sasl-mechanism",
        id = "kafka-sasl-mechanism",
        value_enum,
        value_name = "MECHANISM"
    )]
    pub mechanism: Option<SaslMechanism>,
    /// SASL user name (needed by the sasl-* protocols).
    #[arg(long = "kafka-username", id = "kafka-username", value_name = "USER")]
    pub username: Option<String>,
    /// CA certificate (PEM) that signed the brokers' certificates [default: the system's trust store]
    #[arg(long = "kafka-ca-file", id = "kafka-ca-file", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --kafka-key-file.
    #[arg(long = "kafka-cert-file", id = "kafka-cert-file", value_name = "PEM")]
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM, unencrypted) for mutual TLS; needs --kafka-cert-file.
    #[arg(long = "kafka-key-file", id = "kafka-key-file", value_name = "PEM")]
    pub key_file: Option<PathBuf>,
}

impl KafkaSecurityArgs {
    /// Whether any Kafka security flag was given.
    pub fn is_set(&self) -> bool {
        *self != KafkaSecurityArgs::default()
    }

    /// Checks the flags against each other and reads the password from `lookup(KAFKA_PASSWORD_ENV)`.
    pub fn resolve(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<KafkaSecurity, SecurityError> {
        let protocol = self.protocol.unwrap_or_default();
        let sasl_flag = match (&self.mechanism, &self.username) {
            (Some(_), _) => Some("--kafka-sasl-mechanism"),
            (None, Some(_)) => Some("--kafka-username"),
            (None, None) => None,
        };
        let sasl = match (protocol.uses_sasl(), sasl_flag) {
            (false, Some(flag)) => {
                return Err(invalid(
                    flag,
                    format!(
                        "SASL settings need --kafka-security-protocol sasl-plaintext or sasl-ssl \
                         (it is {})",
                        protocol.flag_name()
                    ),
                ));
            }
            (false, None) => None,
            (true, _) => {
                let mechanism = self.mechanism.ok_or_else(|| {
                    invalid(
                        "--kafka-sasl-mechanism",
                        format!(
                            "{} needs a mechanism: plain, scram-sha256 or scram-sha512",
                            protocol.flag_name()
                        ),
                    )
                })?;
                let username = self.username.clone().ok_or_else(|| {
                    invalid(
                        "--kafka-username",
                        format!("{} needs a user name", protocol.flag_name()),
                    )
                })?;
                Some((mechanism, login(username, KAFKA_PASSWORD_ENV, &lookup)?))
            }
        };
        let tls = tls_files(
            [
                ("--kafka-ca-file", &self.ca_file),
                ("--kafka-cert-file", &self.cert_file),
                ("--kafka-key-file", &self.key_file),
            ],
            |flag| {
                (!protocol.uses_tls()).then(|| {
                    invalid(
                        flag,
                        format!(
                            "TLS files need --kafka-security-protocol ssl or sasl-ssl (it is {})",
                            protocol.flag_name()
                        ),
                    )
                })
            },
        )?;
        Ok(KafkaSecurity {
            protocol,
            sasl,
            tls,
        })
    }
}

/// CQL security flags (`roadtest run --target external`, `roadtest ingest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "CQL security")]
pub struct CqlSecurityArgs {
    /// CQL user name (PasswordAuthenticator)
    ///
    /// The password comes from the environment variable ROADTEST_CQL_PASSWORD, never from a flag.
    #[arg(long = "cql-username", id = "cql-username", value_name = "USER")]
    pub username: Option<String>,
    /// Connect to Cassandra with TLS (implied by the other --cql-*-file flags).
    #[arg(long = "cql-tls", id = "cql-tls")]
    pub tls: bool,
    /// CA certificate (PEM) that signed the nodes' certificates [default: the system's trust store]
    #[arg(long = "cql-ca-file", id = "cql-ca-file", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --cql-key-file.
    #[arg(long = "cql-cert-file", id = "cql-cert-file", value_name = "PEM")]
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM, unencrypted) for mutual TLS; needs --cql-cert-file.
    #[arg(long = "cql-key-file", id = "cql-key-file", value_name = "PEM")]
    pub key_file: Option<PathBuf>,
}

impl CqlSecurityArgs {
    /// Whether any CQL security flag was given.
    pub fn is_set(&self) -> bool {
        *self != CqlSecurityArgs::default()
    }

    /// Checks the flags and reads the password from `lookup(CQL_PASSWORD_ENV)`.
    pub fn resolve(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<CqlSecurity, SecurityError> {
        let login = match &self.username {
            Some(username) => Some(login(username.clone(), CQL_PASSWORD_ENV, &lookup)?),
            None => None,
        };
        let files = tls_files(
            [
                ("--cql-ca-file", &self.ca_file),
                ("--cql-cert-file", &self.cert_file),
                ("--cql-key-file", &self.key_file),
            ],
            |_| None,
        )?;
        let tls = (self.tls || files != TlsFiles::default()).then_some(files);
        Ok(CqlSecurity { login, tls })
    }
}

fn login(
    username: String,
    password_env: &'static str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Login, SecurityError> {
    if username.is_empty() {
        return Err(invalid("user name", "is empty"));
    }
    match lookup(password_env) {
        Some(password) if !password.is_empty() => Ok(Login {
            username,
            password: Password::new(password),
        }),
        _ => Err(invalid(
            password_env,
            format!(
                "user {username} needs a password: export {password_env}=... (passwords are \
                 never taken from flags or files)"
            ),
        )),
    }
}

/// Checks a (CA, certificate, key) triple of flags: each file exists, certificate and key come
/// together, and `not_allowed(flag)` has no objection to a given file.
fn tls_files(
    [(ca_flag, ca), (cert_flag, cert), (key_flag, key)]: [(&'static str, &Option<PathBuf>); 3],
    not_allowed: impl Fn(&'static str) -> Option<SecurityError>,
) -> Result<TlsFiles, SecurityError> {
    for (flag, path) in [(ca_flag, ca), (cert_flag, cert), (key_flag, key)] {
        let Some(path) = path else { continue };
        if let Some(error) = not_allowed(flag) {
            return Err(error);
        }
        if !path.is_file() {
            return Err(invalid(
                flag,
                format!("{} is not a readable file", path.display()),
            ));
        }
    }
    match (cert, key) {
        (Some(_), None) => return Err(invalid(key_flag, format!("{cert_flag} needs it too"))),
        (None, Some(_)) => return Err(invalid(cert_flag, format!("{key_flag} needs it too"))),
        _ => {}
    }
    Ok(TlsFiles {
        ca: ca.clone(),
        cert: cert.clone(),
        key: key.clone(),
    })
}

fn push(args: &mut Vec<OsString>, flag: &str, value: &str) {
    args.push(flag.into());
    args.push(value.into());
}

fn push_paths(args: &mut Vec<OsString>, flags: [(&str, &Option<PathBuf>); 3]) {
    for (flag, path) in flags {
        if let Some(path) = path {
            args.push(flag.into());
            args.push(absolute(path).into_os_string());
        }
    }
}

/// `path` made absolute against the current directory (a child may run elsewhere).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// How the Kafka clients reach the brokers: bootstrap servers and security.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaConnection {
    /// `host:port[,host:port...]`.
    pub bootstrap: String,
    pub security: KafkaSecurity,
}

impl KafkaConnection {
    /// Plaintext, as on the local and containers targets.
    pub fn plaintext(bootstrap: impl Into<String>) -> KafkaConnection {
        KafkaConnection {
            bootstrap: bootstrap.into(),
            security: KafkaSecurity::default(),
        }
    }

    /// A librdkafka configuration with the bootstrap servers and the security settings.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        self.security.apply(&mut config);
        config
    }
}

/// How CQL sessions reach the database: contact points, security and address translation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CqlConnection {
    /// `host:port` each.
    pub contact_points: Vec<String>,
    pub security: CqlSecurity,
    /// Node addresses (as the cluster reports them) -> the address to connect to instead
    /// (roadtest's fault proxy in front of that node). Empty: connect where the cluster says.
    pub translation: Vec<(SocketAddr, SocketAddr)>,
}

impl CqlConnection {
    /// One contact point, no login, no TLS.
    pub fn plain(contact: SocketAddr) -> CqlConnection {
        CqlConnection {
            contact_points: vec![contact.to_string()],
            ..CqlConnection::default()
        }
    }

    /// The contact points as one string, for messages.
    pub fn address(&self) -> String {
        self.contact_points.join(",")
    }
}

#[cfg(test)]
#[path = "security_tests.rs"]
mod tests;
