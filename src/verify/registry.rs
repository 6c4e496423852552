//! A small OCI distribution client for cosign signatures: the `sha256-<hex>.sig`
//! manifest of a repository and its layer blobs. Anonymous or with docker-style
//! credentials (bearer token or basic), HTTPS unless the node lists the registry as
//! insecure, optional mirrors tried first. Every response has a timeout and a size
//! cap; anything unexpected is an error, so verification fails closed.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cosign::{
    SignatureCandidate, ANNOTATION_BUNDLE, ANNOTATION_CERTIFICATE, ANNOTATION_CHAIN, ANNOTATION_SIGNATURE,
};
use super::error::VerifyError;
use super::reference::{check_digest, ImageRef, DEFAULT_REGISTRY};
use super::trust::hex;
use super::SignatureSource;

/// Default time one registry request (connect, headers and body) may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest manifest accepted (the distribution spec's own limit is 4 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// Largest signature payload blob accepted (a simple-signing payload is ~250 bytes).
pub const MAX_PAYLOAD_BYTES: u64 = 256 * 1024;
/// Largest token response accepted.
pub const MAX_TOKEN_BYTES: u64 = 64 * 1024;
/// Most signature layers read from one manifest.
pub const MAX_SIGNATURE_LAYERS: usize = 64;
/// Largest docker auth file read.
const MAX_AUTH_FILE_BYTES: u64 = 1024 * 1024;

const MANIFEST_ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Credentials for one registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// What the client needs, with the auth file already read (a sandboxed child reads
/// no files).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryAccess {
    pub insecure: Vec<String>,
    pub mirrors: BTreeMap<String, Vec<String>>,
    pub credentials: BTreeMap<String, Credentials>,
    pub timeout_ms: u64,
}

pub(crate) fn read_auth_file(path: &std::path::Path) -> Result<BTreeMap<String, Credentials>, VerifyError> {
    let bad =
        |reason: String| VerifyError::BadTrustSettings { reason: format!("auth file {}: {reason}", path.display()) };
    let bytes = crate::fsutil::read_capped(path, MAX_AUTH_FILE_BYTES).map_err(|e| bad(format!("{e:?}")))?;
    parse_auth_file(&bytes).map_err(bad)
}

/// Parses docker's `config.json` `auths` section.
pub fn parse_auth_file(bytes: &[u8]) -> Result<BTreeMap<String, Credentials>, String> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        auths: BTreeMap<String, Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        auth: Option<String>,
        username: Option<String>,
        password: Option<String>,
    }
    let file: File = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for (key, e) in file.auths {
        let creds = match (e.auth, e.username, e.password) {
            (Some(a), _, _) => {
                let raw =
                    base64::engine::general_purpose::STANDARD.decode(a.trim()).map_err(|e| format!("{key}: {e}"))?;
                let text = String::from_utf8(raw).map_err(|_| format!("{key}: auth is not UTF-8"))?;
                let (u, p) = text.split_once(':').ok_or_else(|| format!("{key}: auth is not user:password"))?;
                Credentials { username: u.into(), password: p.into() }
            }
            (None, Some(username), Some(password)) => Credentials { username, password },
            _ => continue,
        };
        out.insert(auth_key(&key), creds);
    }
    Ok(out)
}

/// `https://index.docker.io/v1/` and `docker.io` name the same registry.
fn auth_key(key: &str) -> String {
    let host = key.trim_start_matches("https://").trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_owned(),
        h => h.to_owned(),
    }
}

/// The blocking client.
pub struct RegistryClient {
    access: RegistryAccess,
    http: reqwest::blocking::Client,
}

/// One OCI image manifest, as far as signatures need it.
#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Layer>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Layer {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

struct Call<'a> {
    method: reqwest::Method,
    path: &'a str,
    accept: &'a str,
    body: Option<(&'a str, Vec<u8>)>,
    cap: u64,
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: Vec<u8>,
}

enum Fetched {
    Found(Vec<u8>),
    NotFound,
}

impl RegistryClient {
    pub fn new(access: RegistryAccess) -> Result<Self, VerifyError> {
        let timeout = Duration::from_millis(access.timeout_ms.max(1));
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(5))
            // Proxy variables in the runtime's environment are not hardrun's settings:
            // a registry is reached directly (the sandbox allows only its ports).
            .no_proxy()
            .user_agent(concat!("hardrun/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| VerifyError::BadTrustSettings { reason: format!("HTTP client: {e}") })?;
        Ok(RegistryClient { access, http })
    }

    fn timeout_ms(&self) -> u64 {
        self.access.timeout_ms.max(1)
    }

    /// Mirrors first, then the registry itself.
    fn hosts(&self, registry: &str) -> Vec<String> {
        let mut v = self.access.mirrors.get(registry).cloned().unwrap_or_default();
        v.push(registry.to_owned());
        v
    }

    fn base_url(&self, host: &str) -> String {
        let scheme = if self.access.insecure.iter().any(|h| h == host) { "http" } else { "https" };
        let host = if host == DEFAULT_REGISTRY { "registry-1.docker.io" } else { host };
        format!("{scheme}://{host}")
    }

    /// GET; 404 is `NotFound`, other non-200s errors.
    fn get(&self, host: &str, path: &str, accept: &str, cap: u64) -> Result<Fetched, VerifyError> {
        let answer = self.call(host, Call { method: reqwest::Method::GET, path, accept, body: None, cap })?;
        match answer.status {
            200 => Ok(Fetched::Found(answer.body)),
            404 => Ok(Fetched::NotFound),
            status => Err(VerifyError::RegistryStatus { registry: host.into(), status, what: path.into() }),
        }
    }

    /// One request with the registry's auth dance: anonymous first, then with the
    /// challenge's bearer token (with credentials when the node has them) or basic
    /// auth. `path` may be a full URL (an upload location).
    fn call(&self, host: &str, c: Call<'_>) -> Result<Answer, VerifyError> {
        let url = if c.path.starts_with("http://") || c.path.starts_with("https://") {
            c.path.to_owned()
        } else {
            format!("{}{}", self.base_url(host), c.path)
        };
        let build = |auth: Option<&str>| {
            let mut req = self.http.request(c.method.clone(), &url).header("Accept", c.accept);
            if let Some((ctype, body)) = &c.body {
                req = req.header("Content-Type", *ctype).body(body.clone());
            }
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            req
        };
        let mut resp = self.send(host, build(None))?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            let challenge =
                resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let auth = self.authorization(host, &challenge)?;
            resp = self.send(host, build(Some(&auth)))?;
        }
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = if status == 200 { read_capped(host, resp, c.cap, self.timeout_ms())? } else { Vec::new() };
        Ok(Answer { status, location, body })
    }

    fn send(
        &self,
        host: &str,
        req: reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::Response, VerifyError> {
        req.send().map_err(|e| transport_error(host, &e, self.timeout_ms()))
    }

    fn authorization(&self, host: &str, challenge: &str) -> Result<String, VerifyError> {
        let creds = self.access.credentials.get(host);
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let c = creds.ok_or_else(|| VerifyError::RegistryStatus {
                registry: host.into(),
                status: 401,
                what: "credentials (the auth file has none for this registry)".into(),
            })?;
            return Ok(basic(c));
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(malformed_response(host, format!("unsupported auth challenge {scheme:?}")));
        }
        let params = challenge_params(params);
        let realm = params.get("realm").ok_or_else(|| malformed_response(host, "bearer challenge without realm"))?;
        let mut req = self.http.get(realm.as_str());
        let query: Vec<(&str, &str)> =
            ["service", "scope"].iter().filter_map(|k| params.get(*k).map(|v| (*k, v.as_str()))).collect();
        req = req.query(&query);
        if let Some(c) = creds {
            req = req.header("Authorization", basic(c));
        }
        let resp = self.send(host, req)?;
        if !resp.status().is_success() {
            return Err(VerifyError::RegistryStatus {
                registry: host.into(),
                status: resp.status().as_u16(),
                what: "token".into(),
            });
        }
        let body = read_capped(host, resp, MAX_TOKEN_BYTES, self.timeout_ms())?;
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = serde_json::from_slice(&body).map_err(|e| malformed_response(host, format!("token: {e}")))?;
        let token =
            t.token.or(t.access_token).ok_or_else(|| malformed_response(host, "token response without token"))?;
        Ok(format!("Bearer {token}"))
    }

    /// The signatures in one host's copy of the repository.
    fn signatures_from(
        &self,
        host: &str,
        image: &ImageRef,
        digest: &str,
    ) -> Result<Vec<SignatureCandidate>, VerifyError> {
        let tag = ImageRef::signature_tag(digest);
        let path = format!("/v2/{}/manifests/{tag}", image.repository);
        let bytes = match self.get(host, &path, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES)? {
            Fetched::Found(b) => b,
            Fetched::NotFound => return Ok(Vec::new()),
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| malformed_response(host, format!("signature manifest: {e}")))?;
        if manifest.layers.len() > MAX_SIGNATURE_LAYERS {
            return Err(malformed_response(host, format!("more than {MAX_SIGNATURE_LAYERS} signature layers")));
        }
        manifest.layers.into_iter().map(|l| self.candidate(host, image, l)).collect()
    }

    fn candidate(&self, host: &str, image: &ImageRef, layer: Layer) -> Result<SignatureCandidate, VerifyError> {
        check_digest(&layer.digest)
            .map_err(|_| malformed_response(host, format!("layer digest {:?}", layer.digest)))?;
        if layer.size > MAX_PAYLOAD_BYTES {
            return Err(VerifyError::ResponseTooLarge { registry: host.into(), limit: MAX_PAYLOAD_BYTES });
        }
        let path = format!("/v2/{}/blobs/{}", image.repository, layer.digest);
        let payload = match self.get(host, &path, "*/*", MAX_PAYLOAD_BYTES)? {
            Fetched::Found(b) => b,
            Fetched::NotFound => return Err(malformed_response(host, format!("blob {} is missing", layer.digest))),
        };
        if format!("sha256:{}", hex(&Sha256::digest(&payload))) != layer.digest {
            return Err(malformed_response(host, format!("blob {} does not match its digest", layer.digest)));
        }
        let mut a = layer.annotations;
        Ok(SignatureCandidate {
            media_type: layer.media_type,
            payload,
            signature: a.remove(ANNOTATION_SIGNATURE).unwrap_or_default(),
            certificate: a.remove(ANNOTATION_CERTIFICATE),
            chain: a.remove(ANNOTATION_CHAIN),
            bundle: a.remove(ANNOTATION_BUNDLE),
        })
    }
}

const INDEX_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

impl RegistryClient {
    /// The digest a tag points at now (the manifest or index bytes' sha256). For the
    /// tool commands: the create path asks containerd instead, never a tag.
    pub fn resolve_digest(&self, image: &ImageRef) -> Result<String, VerifyError> {
        if let Some(d) = &image.digest {
            return Ok(d.clone());
        }
        let host = &image.registry;
        let tag = image.tag.as_deref().unwrap_or("latest");
        let path = format!("/v2/{}/manifests/{tag}", image.repository);
        match self.get(host, &path, INDEX_ACCEPT, MAX_MANIFEST_BYTES)? {
            Fetched::Found(b) => Ok(format!("sha256:{}", hex(&Sha256::digest(&b)))),
            Fetched::NotFound => Err(VerifyError::RegistryStatus { registry: host.clone(), status: 404, what: path }),
        }
    }

    /// Adds one signature layer to `<repo>:sha256-<hex>.sig` (created when absent),
    /// the way cosign does: payload blob, config blob, manifest.
    pub fn push_signature(
        &self,
        image: &ImageRef,
        digest: &str,
        payload: &[u8],
        signature: &str,
    ) -> Result<(), VerifyError> {
        let host = &image.registry;
        let payload_digest = self.upload_blob(image, payload)?;
        let tag = ImageRef::signature_tag(digest);
        let path = format!("/v2/{}/manifests/{tag}", image.repository);
        let mut layers = match self.get(host, &path, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES)? {
            Fetched::Found(b) => {
                let m: serde_json::Value = serde_json::from_slice(&b)
                    .map_err(|e| malformed_response(host, format!("signature manifest: {e}")))?;
                m["layers"].as_array().cloned().unwrap_or_default()
            }
            Fetched::NotFound => Vec::new(),
        };
        let layer = serde_json::json!({
            "mediaType": super::cosign::SIMPLE_SIGNING_MEDIA_TYPE,
            "size": payload.len(),
            "digest": payload_digest,
            "annotations": { ANNOTATION_SIGNATURE: signature },
        });
        if !layers.contains(&layer) {
            layers.push(layer);
        }
        let diff_ids: Vec<&serde_json::Value> = layers.iter().map(|l| &l["digest"]).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "", "config": {}, "created": "0001-01-01T00:00:00Z", "os": "",
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        }))
        .expect("config serializes");
        let config_digest = self.upload_blob(image, &config)?;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "size": config.len(), "digest": config_digest },
            "layers": layers,
        }))
        .expect("manifest serializes");
        let put = Call {
            method: reqwest::Method::PUT,
            path: &path,
            accept: "*/*",
            body: Some((OCI_MANIFEST, manifest)),
            cap: 0,
        };
        expect_status(host, &path, self.call(host, put)?, 201)?;
        Ok(())
    }

    fn upload_blob(&self, image: &ImageRef, blob: &[u8]) -> Result<String, VerifyError> {
        let host = &image.registry;
        let digest = format!("sha256:{}", hex(&Sha256::digest(blob)));
        let start = format!("/v2/{}/blobs/uploads/", image.repository);
        let post = Call { method: reqwest::Method::POST, path: &start, accept: "*/*", body: None, cap: 0 };
        let answer = expect_status(host, &start, self.call(host, post)?, 202)?;
        let location = answer.location.ok_or_else(|| malformed_response(host, "upload without Location"))?;
        let location = if location.starts_with('/') { format!("{}{location}", self.base_url(host)) } else { location };
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={digest}");
        let put = Call {
            method: reqwest::Method::PUT,
            path: &url,
            accept: "*/*",
            body: Some(("application/octet-stream", blob.to_vec())),
            cap: 0,
        };
        expect_status(host, &start, self.call(host, put)?, 201)?;
        Ok(digest)
    }
}

fn expect_status(host: &str, what: &str, a: Answer, want: u16) -> Result<Answer, VerifyError> {
    if a.status == want {
        Ok(a)
    } else {
        Err(VerifyError::RegistryStatus { registry: host.into(), status: a.status, what: what.into() })
    }
}

impl SignatureSource for RegistryClient {
    /// Tries each mirror, then the registry; the first host that answers (with
    /// signatures or a clean "none") decides. When none answers, the registry's own
    /// error is reported.
    fn platform_digest(&self, image: &ImageRef, digest: &str) -> Result<Option<String>, VerifyError> {
        let host = &image.registry;
        let path = format!("/v2/{}/manifests/{digest}", image.repository);
        let bytes = match self.get(host, &path, INDEX_ACCEPT, MAX_MANIFEST_BYTES)? {
            Fetched::Found(b) => b,
            Fetched::NotFound => {
                return Err(VerifyError::RegistryStatus { registry: host.clone(), status: 404, what: path })
            }
        };
        platform_entry(host, digest, &bytes)
    }

    fn signatures(&self, image: &ImageRef, digest: &str) -> Result<Vec<SignatureCandidate>, VerifyError> {
        let mut last = None;
        for host in self.hosts(&image.registry) {
            match self.signatures_from(&host, image, digest) {
                Ok(found) => return Ok(found),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least the registry itself is tried"))
    }
}

/// The entry of an index for this host's platform (linux and the running
/// architecture, by OCI's names). The bytes must be what `digest` names.
fn platform_entry(host: &str, digest: &str, bytes: &[u8]) -> Result<Option<String>, VerifyError> {
    if format!("sha256:{}", hex(&Sha256::digest(bytes))) != digest {
        return Err(malformed_response(host, format!("manifest {digest} does not match its digest")));
    }
    #[derive(Deserialize)]
    struct Index {
        manifests: Option<Vec<Entry>>,
    }
    #[derive(Deserialize)]
    struct Entry {
        digest: String,
        platform: Option<Platform>,
    }
    #[derive(Deserialize)]
    struct Platform {
        os: String,
        architecture: String,
    }
    let index: Index = serde_json::from_slice(bytes).map_err(|e| malformed_response(host, format!("manifest: {e}")))?;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let Some(entries) = index.manifests else { return Ok(None) };
    let entry =
        entries.into_iter().find(|e| e.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == arch));
    match entry {
        Some(e) => check_digest(&e.digest).map(Some).map_err(|_| malformed_response(host, "index entry digest")),
        None => Ok(None),
    }
}

fn basic(c: &Credentials) -> String {
    let raw = format!("{}:{}", c.username, c.password);
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

/// `realm="https://auth",service="registry",scope="repository:x:pull"`.
fn challenge_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (value, tail) = match after.strip_prefix('"') {
            Some(q) => q.split_once('"').unwrap_or((q, "")),
            None => after.split_once(',').unwrap_or((after, "")),
        };
        out.insert(key, value.to_owned());
        rest = tail.trim_start_matches(',').trim();
    }
    out
}

fn malformed_response(host: &str, reason: impl Into<String>) -> VerifyError {
    VerifyError::MalformedResponse { registry: host.into(), reason: reason.into() }
}

fn transport_error(host: &str, e: &reqwest::Error, timeout_ms: u64) -> VerifyError {
    if e.is_timeout() {
        VerifyError::RegistryTimeout { registry: host.into(), timeout_ms }
    } else {
        // The chain of sources says why (connection refused, TLS, DNS).
        let mut reason = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            reason = format!("{reason}: {s}");
            src = s.source();
        }
        VerifyError::RegistryUnreachable { registry: host.into(), reason }
    }
}

/// Reads a body up to `cap` bytes; a declared or actual length past it is an error.
fn read_capped(
    host: &str,
    resp: reqwest::blocking::Response,
    cap: u64,
    timeout_ms: u64,
) -> Result<Vec<u8>, VerifyError> {
    let too_large = || VerifyError::ResponseTooLarge { registry: host.into(), limit: cap };
    if resp.content_length().is_some_and(|n| n > cap) {
        return Err(too_large());
    }
    let mut buf = Vec::new();
    resp.take(cap + 1).read_to_end(&mut buf).map_err(|e| {
        let timed_out = e.kind() == std::io::ErrorKind::TimedOut
            || std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<reqwest::Error>())
                .is_some_and(reqwest::Error::is_timeout);
        if timed_out {
            VerifyError::RegistryTimeout { registry: host.into(), timeout_ms }
        } else {
            VerifyError::RegistryUnreachable { registry: host.into(), reason: format!("reading the response: {e}") }
        }
    })?;
    if buf.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_params_parse_quoted_and_bare_values() {
        let p = challenge_params(
            r#"realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["scope"], "repository:a/b:pull");
        let p = challenge_params("realm=https://x/t, service=s");
        assert_eq!((p["realm"].as_str(), p["service"].as_str()), ("https://x/t", "s"));
    }

    #[test]
    fn auth_file_entries_in_both_forms() {
        let f = br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"127.0.0.1:5000":{"username":"a","password":"b:c"}}}"#;
        let c = parse_auth_file(f).unwrap();
        assert_eq!(c["docker.io"], Credentials { username: "u".into(), password: "p".into() });
        assert_eq!(c["127.0.0.1:5000"].password, "b:c");
        for bad in [&b"{"[..], br#"{"auths":{"x":{"auth":"@@"}}}"#, br#"{"auths":{"x":{"auth":"bm9jb2xvbg=="}}}"#] {
            assert!(parse_auth_file(bad).is_err());
        }
    }

    #[test]
    fn the_platform_entry_of_an_index_is_found_and_checked() {
        let arch = if std::env::consts::ARCH == "x86_64" { "amd64" } else { "arm64" };
        let platform = format!("sha256:{}", "1".repeat(64));
        let index = format!(
            r#"{{"manifests":[{{"digest":"sha256:{}","platform":{{"os":"linux","architecture":"s390x"}}}},{{"digest":"{platform}","platform":{{"os":"linux","architecture":"{arch}"}}}}]}}"#,
            "2".repeat(64)
        );
        let digest = format!("sha256:{}", hex(&Sha256::digest(index.as_bytes())));
        assert_eq!(platform_entry("h", &digest, index.as_bytes()).unwrap(), Some(platform));
        assert_eq!(platform_entry("h", &digest, b"x").unwrap_err().kind(), "malformed-response");
        let manifest = br#"{"layers":[]}"#;
        let d = format!("sha256:{}", hex(&Sha256::digest(manifest)));
        assert_eq!(platform_entry("h", &d, manifest).unwrap(), None);
    }

    #[test]
    fn plain_http_only_for_listed_registries() {
        let c = RegistryClient::new(RegistryAccess {
            insecure: vec!["127.0.0.1:5000".into()],
            timeout_ms: 100,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.base_url("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(c.base_url("127.0.0.1:5001"), "https://127.0.0.1:5001");
        assert_eq!(c.base_url("docker.io"), "https://registry-1.docker.io");
    }

    // ---- against a loopback HTTP server that answers by path

    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// Serves `answer(path)` (status, body, send Content-Length) to every request.
    fn serve(answer: impl Fn(&str) -> (u16, Vec<u8>, bool) + Send + 'static) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut first = String::new();
                reader.read_line(&mut first).unwrap();
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = first.split(' ').nth(1).unwrap_or("").to_owned();
                let (status, body, with_length) = answer(&path);
                let len = if with_length { format!("Content-Length: {}\r\n", body.len()) } else { String::new() };
                let head = format!("HTTP/1.1 {status} X\r\n{len}Connection: close\r\n\r\n");
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            }
        });
        addr
    }

    fn client(host: &str, timeout_ms: u64) -> RegistryClient {
        RegistryClient::new(RegistryAccess { insecure: vec![host.into()], timeout_ms, ..Default::default() }).unwrap()
    }

    const DIGEST: &str = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00";

    fn image(host: &str) -> ImageRef {
        ImageRef::parse(&format!("{host}/test/app")).unwrap()
    }

    /// A manifest padded with spaces to exactly `len` bytes.
    fn manifest_of_len(len: usize) -> Vec<u8> {
        let mut m = br#"{"schemaVersion":2,"layers":[]}"#.to_vec();
        m.resize(len, b' ');
        m
    }

    #[test]
    fn manifest_at_the_cap_is_read_and_one_byte_more_is_refused() {
        for with_length in [true, false] {
            let host = serve(move |_| (200, manifest_of_len(MAX_MANIFEST_BYTES as usize), with_length));
            assert_eq!(client(&host, 5000).signatures(&image(&host), DIGEST).unwrap(), vec![]);
            let host = serve(move |_| (200, manifest_of_len(MAX_MANIFEST_BYTES as usize + 1), with_length));
            let err = client(&host, 5000).signatures(&image(&host), DIGEST).unwrap_err();
            assert_eq!(err.kind(), "response-too-large", "{err}");
        }
    }

    #[test]
    fn signature_layers_up_to_the_cap_are_read_and_one_more_is_refused() {
        let payload = br#"{"critical":{}}"#.to_vec();
        let digest = format!("sha256:{}", hex(&Sha256::digest(&payload)));
        let manifest_with = |n: usize| {
            let layer = format!(
                r#"{{"mediaType":"m","digest":"{digest}","size":{},"annotations":{{"{ANNOTATION_SIGNATURE}":"c2ln"}}}}"#,
                payload.len()
            );
            format!(r#"{{"schemaVersion":2,"layers":[{}]}}"#, vec![layer; n].join(","))
        };
        for (n, ok) in [(MAX_SIGNATURE_LAYERS, true), (MAX_SIGNATURE_LAYERS + 1, false)] {
            let (m, p) = (manifest_with(n), payload.clone());
            let host = serve(move |path| {
                if path.contains("/manifests/") {
                    (200, m.clone().into_bytes(), true)
                } else {
                    (200, p.clone(), true)
                }
            });
            let got = client(&host, 5000).signatures(&image(&host), DIGEST);
            if ok {
                assert_eq!(got.unwrap().len(), n);
            } else {
                assert_eq!(got.unwrap_err().kind(), "malformed-response");
            }
        }
    }

    #[test]
    fn no_signature_tag_is_no_signatures_and_other_statuses_are_errors() {
        let host = serve(|_| (404, b"{}".to_vec(), true));
        assert_eq!(client(&host, 2000).signatures(&image(&host), DIGEST).unwrap(), vec![]);
        let host = serve(|_| (500, b"oops".to_vec(), true));
        assert_eq!(client(&host, 2000).signatures(&image(&host), DIGEST).unwrap_err().kind(), "registry-status");
    }

    #[test]
    fn signature_manifest_and_blob_are_read_and_checked() {
        let payload = br#"{"critical":{}}"#.to_vec();
        let digest = format!("sha256:{}", hex(&Sha256::digest(&payload)));
        let manifest = format!(
            r#"{{"schemaVersion":2,"layers":[{{"mediaType":"m","digest":"{digest}","size":{},"annotations":{{"{ANNOTATION_SIGNATURE}":"c2ln"}}}}]}}"#,
            payload.len()
        );
        let (m, p) = (manifest.clone(), payload.clone());
        let host = serve(move |path| {
            if path.contains("/manifests/sha256-634a") {
                (200, m.clone().into_bytes(), true)
            } else if path.ends_with(&format!("/blobs/{digest}")) {
                (200, p.clone(), true)
            } else {
                (404, vec![], true)
            }
        });
        let found = client(&host, 2000).signatures(&image(&host), DIGEST).unwrap();
        assert_eq!((found[0].payload.as_slice(), found[0].signature.as_str()), (payload.as_slice(), "c2ln"));
        // A blob that is not what its digest says.
        let m = manifest.clone();
        let host = serve(move |path| {
            if path.contains("/manifests/") {
                (200, m.clone().into_bytes(), true)
            } else {
                (200, b"{\"critical\":{}} ".to_vec(), true)
            }
        });
        assert_eq!(client(&host, 2000).signatures(&image(&host), DIGEST).unwrap_err().kind(), "malformed-response");
        // Garbage manifest.
        let host = serve(|_| (200, b"<html>".to_vec(), true));
        assert_eq!(client(&host, 2000).signatures(&image(&host), DIGEST).unwrap_err().kind(), "malformed-response");
    }

    #[test]
    fn a_stalled_registry_is_a_timeout_and_a_closed_port_is_unreachable() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        // Accepts (the kernel does) and never answers.
        let started = std::time::Instant::now();
        let err = client(&host, 300).signatures(&image(&host), DIGEST).unwrap_err();
        assert_eq!(err.kind(), "registry-timeout", "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
        drop(listener);
        let err = client(&host, 300).signatures(&image(&host), DIGEST).unwrap_err();
        assert_eq!(err.kind(), "registry-unreachable", "{err}");
    }

    #[test]
    fn a_mirror_that_answers_is_used_and_a_dead_one_is_skipped() {
        let real = serve(|_| (404, vec![], true));
        let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let access = RegistryAccess {
            insecure: vec![real.clone(), dead.clone()],
            mirrors: [(real.clone(), vec![dead])].into(),
            timeout_ms: 500,
            ..Default::default()
        };
        assert_eq!(RegistryClient::new(access).unwrap().signatures(&image(&real), DIGEST).unwrap(), vec![]);
    }
}
