//! The HTTP client: basic auth, no redirects, connect and request timeouts, an overall deadline, and retries
//! with exponential backoff for GETs only (a retried POST could start a second transfer).

use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderMap, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::credentials::Credentials;
use crate::error::OntapError;
use crate::model::{
    Collection, ErrorResponse, Job, JobAccepted, RELATIONSHIP_FIELDS, Relationship, Transfer,
};
use crate::path::{ClusterHost, VolumePath};
use crate::tls::{self, TlsOptions};

/// How many times a GET is tried, and how long to wait between tries (doubling up to `max_backoff`).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub tls: TlsOptions,
    pub connect_timeout: Duration,
    /// Bounds one request, from connecting until the body is read.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// Pause between two looks at a running job or transfer.
    pub poll_interval: Duration,
    /// Bounds everything done with the client, counted from its creation. Reaching it is
    /// [`OntapError::Timeout`].
    pub overall_timeout: Option<Duration>,
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            tls: TlsOptions::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            poll_interval: Duration::from_secs(2),
            overall_timeout: None,
            user_agent: concat!("tprotect-ontap/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// How ONTAP accepted a transfer request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "accepted_as", rename_all = "snake_case")]
pub enum TransferStarted {
    /// `201 Created`; the `Location` header names the transfer.
    Created { transfer_uuid: String },
    /// `202 Accepted`; a job starts the transfer.
    Accepted { job_uuid: String },
}

/// A fully read answer.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A failed attempt, and whether trying the same GET again could help.
struct Failure {
    error: OntapError,
    retryable: bool,
}

impl Failure {
    fn fatal(error: OntapError) -> Self {
        Self {
            error,
            retryable: false,
        }
    }
}

pub struct OntapClient {
    http: reqwest::Client,
    host: ClusterHost,
    credentials: Credentials,
    options: ClientOptions,
    deadline: Option<Instant>,
}

impl std::fmt::Debug for OntapClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OntapClient")
            .field("host", &self.host.to_string())
            .field("credentials", &self.credentials)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl OntapClient {
    pub fn new(
        host: ClusterHost,
        credentials: Credentials,
        options: ClientOptions,
    ) -> Result<Self, OntapError> {
        let tls = tls::client_config(&options.tls)?;
        let http = reqwest::Client::builder()
            // `use_preconfigured_tls` is the deprecated name of this in reqwest 0.13.
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(options.connect_timeout)
            .user_agent(options.user_agent.clone())
            .https_only(true)
            .build()
            .map_err(|err| OntapError::TlsSetup(format!("cannot build the HTTP client: {err}")))?;
        let deadline = options.overall_timeout.map(|timeout| Instant::now() + timeout);
        Ok(Self {
            http,
            host,
            credentials,
            options,
            deadline,
        })
    }

    pub fn host(&self) -> &ClusterHost {
        &self.host
    }

    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// `GET /api/snapmirror/relationships?destination.path=...&fields=...`: the relationship whose destination
    /// is `destination`.
    pub async fn find_relationship(&self, destination: &VolumePath) -> Result<Relationship, OntapError> {
        let destination_text = destination.to_string();
        let mut url = self.url(&["snapmirror", "relationships"]);
        url.query_pairs_mut()
            .append_pair("destination.path", &destination_text)
            .append_pair("fields", RELATIONSHIP_FIELDS);
        let what = format!("looking up the SnapMirror relationship {destination_text}");
        let collection: Collection<Relationship> = self.get_json(url, &what).await?;
        let mut matching: Vec<Relationship> = collection
            .records
            .into_iter()
            .filter(|r| r.destination_path().is_none_or(|path| path == destination_text))
            .collect();
        match matching.len() {
            0 => Err(OntapError::NotFound {
                host: self.host.to_string(),
                destination: destination_text,
            }),
            1 => Ok(matching.remove(0)),
            n => Err(OntapError::UnexpectedResponse {
                what,
                problem: format!("{n} relationships have destination {destination_text}"),
            }),
        }
    }

    /// `POST /api/snapmirror/relationships/{uuid}/transfers` with `{}`: tried exactly once.
    pub async fn start_transfer(&self, relationship_uuid: &str) -> Result<TransferStarted, OntapError> {
        let url = self.url(&["snapmirror", "relationships", relationship_uuid, "transfers"]);
        let what = format!("POST {}", url.path());
        let answer = self
            .exchange(Method::POST, &url, Some(&serde_json::json!({})), &what)
            .await
            .map_err(|failure| failure.error)?;
        match answer.status {
            StatusCode::CREATED => {
                if let Some(location) = answer.headers.get(LOCATION) {
                    let location = location.to_str().unwrap_or_default();
                    return transfer_uuid_from_location(location)
                        .map(|transfer_uuid| TransferStarted::Created { transfer_uuid })
                        .ok_or_else(|| OntapError::UnexpectedResponse {
                            what,
                            problem: format!(
                                "201 Created with a Location that names no transfer: {location:?}"
                            ),
                        });
                }
                // Without a Location, a body is there only with return_records=true.
                let records: Option<Collection<Transfer>> = serde_json::from_slice(&answer.body).ok();
                records
                    .and_then(|c| c.records.into_iter().next())
                    .map(|t| TransferStarted::Created {
                        transfer_uuid: t.uuid,
                    })
                    .ok_or_else(|| OntapError::UnexpectedResponse {
                        what,
                        problem: "201 Created without a Location header".into(),
                    })
            }
            StatusCode::ACCEPTED => {
                let accepted: JobAccepted = decode(&answer.body, &what)?;
                Ok(TransferStarted::Accepted {
                    job_uuid: accepted.job.uuid,
                })
            }
            status => Err(OntapError::UnexpectedResponse {
                what,
                problem: format!("{status}; expected 201 Created or 202 Accepted"),
            }),
        }
    }

    /// `GET /api/cluster/jobs/{uuid}`.
    pub async fn job(&self, job_uuid: &str) -> Result<Job, OntapError> {
        let url = self.url(&["cluster", "jobs", job_uuid]);
        self.get_json(url, &format!("following job {job_uuid}")).await
    }

    /// `GET /api/snapmirror/relationships/{uuid}/transfers/{transfer_uuid}`.
    pub async fn transfer(
        &self,
        relationship_uuid: &str,
        transfer_uuid: &str,
    ) -> Result<Transfer, OntapError> {
        let url = self.url(&[
            "snapmirror",
            "relationships",
            relationship_uuid,
            "transfers",
            transfer_uuid,
        ]);
        self.get_json(url, &format!("following transfer {transfer_uuid}"))
            .await
    }

    /// Waits one poll interval, or fails with [`OntapError::Timeout`] when the deadline comes first.
    pub async fn pause_before_next_poll(&self, what: &str) -> Result<(), OntapError> {
        self.pause(self.options.poll_interval, what).await
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.host.api_base().clone();
        url.path_segments_mut()
            .expect("an https URL has path segments")
            .pop_if_empty()
            .extend(segments);
        url
    }

    fn timeout_error(&self, what: &str) -> OntapError {
        OntapError::Timeout {
            operation: format!("while {what}"),
            after: self.options.overall_timeout.unwrap_or_default(),
        }
    }

    async fn pause(&self, duration: Duration, what: &str) -> Result<(), OntapError> {
        if let Some(deadline) = self.deadline
            && Instant::now() + duration >= deadline
        {
            tokio::time::sleep_until(deadline).await;
            return Err(self.timeout_error(what));
        }
        tokio::time::sleep(duration).await;
        Ok(())
    }

    async fn get_json<T: DeserializeOwned>(&self, url: Url, what: &str) -> Result<T, OntapError> {
        let retry = &self.options.retry;
        let mut backoff = retry.initial_backoff;
        let mut attempt = 1;
        loop {
            match self.exchange(Method::GET, &url, None, what).await {
                Ok(answer) => return decode(&answer.body, what),
                Err(Failure { error, retryable }) => {
                    if !retryable || attempt >= retry.max_attempts.max(1) {
                        return Err(error);
                    }
                    tracing::warn!(
                        "GET {} failed (attempt {attempt} of {}): {error}; retrying in {}",
                        url.path(),
                        retry.max_attempts,
                        crate::error::format_duration(backoff)
                    );
                    self.pause(backoff, what).await?;
                    attempt += 1;
                    backoff = (backoff * 2).min(retry.max_backoff);
                }
            }
        }
    }

    /// One request, its answer read to the end. Non-2xx answers become errors.
    async fn exchange(
        &self,
        method: Method,
        url: &Url,
        body: Option<&serde_json::Value>,
        what: &str,
    ) -> Result<Answer, Failure> {
        let mut per_request = self.options.request_timeout;
        if let Some(deadline) = self.deadline {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Failure::fatal(self.timeout_error(what)));
            }
            per_request = per_request.min(remaining);
        }
        let path = url.path().to_owned();
        tracing::debug!(%method, %path, query = url.query().unwrap_or(""), "ONTAP request");
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            // reqwest marks this header sensitive, so it is redacted from its own Debug output too.
            .basic_auth(self.credentials.username(), Some(self.credentials.password()))
            .header(ACCEPT, "application/json")
            .timeout(per_request);
        if let Some(body) = body {
            request = request.json(body);
        }
        let read = async {
            let response = request.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(Answer {
                status,
                headers,
                body,
            })
        };
        let answer = match read.await {
            Ok(answer) => answer,
            Err(err) => return Err(self.transport_failure(err, &method, &path, per_request, what)),
        };
        tracing::debug!(%method, %path, status = %answer.status, "ONTAP answer");
        let status = answer.status;
        if status.is_success() {
            return Ok(answer);
        }
        let method = method.to_string();
        if status.is_redirection() {
            let location = answer
                .headers
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned);
            return Err(Failure::fatal(OntapError::Redirect {
                method,
                path,
                status,
                location,
            }));
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(Failure::fatal(OntapError::Unauthorized {
                host: self.host.to_string(),
                source_of: self.credentials.source().clone(),
            }));
        }
        let error = serde_json::from_slice::<ErrorResponse>(&answer.body)
            .ok()
            .map(|body| Box::new(body.error));
        let retryable = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT
        );
        Err(Failure {
            error: OntapError::Status {
                method,
                path,
                status,
                error,
            },
            retryable,
        })
    }

    fn transport_failure(
        &self,
        err: reqwest::Error,
        method: &Method,
        path: &str,
        per_request: Duration,
        what: &str,
    ) -> Failure {
        let host = self.host.to_string();
        // A connection that failed (TLS included) never carried the request. Anything after that may have: a
        // transfer POST whose answer is lost may have started a transfer, and must never read "cannot reach".
        if *method == Method::POST && !err.is_connect() && tls::find_rustls_error(&err).is_none() {
            let timed_out = err.is_timeout();
            let reason = if timed_out {
                format!("no answer within {}", crate::error::format_duration(per_request))
            } else {
                // The transport's own words (hyper, rustls) help only someone debugging the network.
                tracing::info!(error = %error_chain_text(&err.without_url()), "the POST's answer was lost");
                "the connection failed before the answer was complete".to_owned()
            };
            return Failure::fatal(OntapError::PostAnswerLost {
                host,
                request: format!("{method} {path}"),
                reason,
                timed_out,
            });
        }
        if let Some(tls_error) = tls::find_rustls_error(&err) {
            let reason = tls_error.to_string();
            return Failure::fatal(match tls_error {
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                ) => OntapError::UntrustedCertificate {
                    host,
                    reason,
                    hint: "connect with a name the certificate was issued for (--hostname), or, only on a network \
                           you trust, pass --verify-tls=false",
                },
                rustls::Error::InvalidCertificate(_) => OntapError::UntrustedCertificate {
                    host,
                    reason,
                    hint: "pass the CA that signed it with --ca-file PEM (or, only on a network you trust, \
                           --verify-tls=false)",
                },
                _ => OntapError::Tls { host, reason },
            });
        }
        if err.is_timeout() {
            if self.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Failure::fatal(self.timeout_error(what));
            }
            let operation = format!("waiting for ONTAP at {host} to answer {method} {path}");
            return Failure {
                error: OntapError::Timeout {
                    operation,
                    after: per_request,
                },
                retryable: true,
            };
        }
        // The request names the URL already; reqwest's own message would repeat it, query and all.
        let request = format!("{method} {path}");
        Failure {
            error: OntapError::Connect {
                host,
                request,
                source: err.without_url(),
            },
            retryable: true,
        }
    }
}

/// An error and its causes, each said once: reqwest's own text ("error sending request") says little without
/// hyper's cause ("connection closed before message completed").
fn error_chain_text(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        let text = error.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        current = error.source();
    }
    parts.join(": ")
}

/// The last path segment of `.../transfers/{uuid}` (absolute or relative, with or without a query).
fn transfer_uuid_from_location(location: &str) -> Option<String> {
    let path = location.split(['?', '#']).next()?;
    let mut segments = path.trim_end_matches('/').rsplit('/');
    let uuid = segments.next()?;
    let parent = segments.next()?;
    (parent == "transfers" && !uuid.is_empty()).then(|| uuid.to_owned())
}

fn decode<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, OntapError> {
    serde_json::from_slice(body).map_err(|source| OntapError::Decode {
        what: what.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_headers_name_the_transfer() {
        let uuid = "2ae3c4a8-0000-4000-8000-00000000abcd";
        for location in [
            format!("/api/snapmirror/relationships/r1/transfers/{uuid}"),
            format!("https://cluster1/api/snapmirror/relationships/r1/transfers/{uuid}/"),
            format!("/api/snapmirror/relationships/r1/transfers/{uuid}?fields=state"),
        ] {
            assert_eq!(
                transfer_uuid_from_location(&location).as_deref(),
                Some(uuid),
                "{location}"
            );
        }
        assert_eq!(transfer_uuid_from_location("/api/cluster/jobs/j1"), None);
        assert_eq!(
            transfer_uuid_from_location("/api/snapmirror/relationships/r1/transfers/"),
            None
        );
        assert_eq!(transfer_uuid_from_location(""), None);
    }

    #[test]
    fn urls_escape_segments() {
        let host: ClusterHost = "127.0.0.1:8443".parse().unwrap();
        let credentials = Credentials::new("u", "p", crate::credentials::CredentialSource::Caller).unwrap();
        let client = OntapClient::new(host, credentials, ClientOptions::default()).unwrap();
        let url = client.url(&["snapmirror", "relationships", "a/../b", "transfers"]);
        assert_eq!(
            url.as_str(),
            "https://127.0.0.1:8443/api/snapmirror/relationships/a%2F..%2Fb/transfers"
        );
    }

    #[test]
    fn debug_output_of_a_client_has_no_secrets() {
        let host: ClusterHost = "cluster1".parse().unwrap();
        let credentials = Credentials::new(
            "someuser-41",
            "somepass-42",
            crate::credentials::CredentialSource::Caller,
        )
        .unwrap();
        let client = OntapClient::new(host, credentials, ClientOptions::default()).unwrap();
        let text = format!("{client:?}");
        assert!(
            !text.contains("someuser-41") && !text.contains("somepass-42"),
            "{text}"
        );
    }
}
