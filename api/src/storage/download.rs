//! Downloading a provider's output: bounded in size and time, only from allowed hosts, never from
//! private, loopback or link-local addresses (on the first request or any redirect), and typed by
//! sniffing the bytes rather than trusting a header.

use super::sniff;
use reqwest::Url;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Policy {
    pub max_bytes: usize,
    pub timeout: Duration,
    /// Host names (or their parent domains) downloads may come from; empty allows any public host.
    pub allowed_hosts: Vec<String>,
    /// Only for tests against a local fake: permits loopback addresses (and plain http). Private,
    /// link-local and the other special ranges stay forbidden.
    pub allow_loopback: bool,
}

impl Policy {
    pub fn from_config(config: &crate::config::ProvidersConfig) -> Self {
        Self {
            max_bytes: config.download_max_bytes,
            timeout: config.download_timeout,
            allowed_hosts: config.download_allowed_hosts.clone(),
            allow_loopback: config.download_allow_loopback,
        }
    }

    fn refuses(&self, ip: IpAddr) -> bool {
        is_forbidden(ip) && !(self.allow_loopback && ip.to_canonical().is_loopback())
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DownloadError {
    #[error("refused URL: {0}")]
    Refused(String),
    #[error("the download failed: {0}")]
    Failed(String),
    #[error("the file is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the file is not an image")]
    NotAnImage,
}

/// Loopback, private (RFC 1918, unique local), link-local (cloud metadata lives there), CGNAT,
/// multicast, unspecified and documentation ranges.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

impl Policy {
    fn host_allowed(&self, host: &str) -> bool {
        self.allowed_hosts.is_empty()
            || self
                .allowed_hosts
                .iter()
                .any(|allowed| host == allowed || host.ends_with(&format!(".{allowed}")))
    }

    /// Whether `url` may be asked at all: its scheme, its host, and its address when it is one.
    pub fn check_url(&self, url: &Url) -> Result<(), DownloadError> {
        let scheme_ok = url.scheme() == "https" || (self.allow_loopback && url.scheme() == "http");
        if !scheme_ok {
            return Err(DownloadError::Refused(format!(
                "scheme {} is not allowed",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| DownloadError::Refused("no host".to_owned()))?;
        if !self.host_allowed(host) {
            return Err(DownloadError::Refused(format!(
                "host {host} is not allowed"
            )));
        }
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>()
            && self.refuses(ip)
        {
            return Err(DownloadError::Refused(format!("address {ip} is private")));
        }
        Ok(())
    }
}

/// A client for `url` under `policy`: the host is resolved once, every address checked, and the
/// client connects only to those (no DNS rebinding in between). Redirects are followed (up to
/// five, each checked) only when `follow` is set.
pub async fn pinned_client(
    policy: &Policy,
    url: &Url,
    follow: bool,
) -> Result<reqwest::Client, DownloadError> {
    policy.check_url(url)?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| DownloadError::Failed(format!("cannot resolve {host}: {e}")))?
        .collect();
    if addrs.is_empty() || addrs.iter().any(|a| policy.refuses(a.ip())) {
        return Err(DownloadError::Refused(format!(
            "host {host} resolves to a private address"
        )));
    }
    let redirect_policy = policy.clone();
    let redirects = if follow {
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                return attempt.error("too many redirects");
            }
            match redirect_policy.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(e) => attempt.error(e),
            }
        })
    } else {
        reqwest::redirect::Policy::none()
    };
    reqwest::Client::builder()
        .timeout(policy.timeout)
        .resolve_to_addrs(&host, &addrs)
        .redirect(redirects)
        .build()
        .map_err(|e| DownloadError::Failed(e.to_string()))
}

/// Fetches `url` under `policy`; returns the bytes and their sniffed content type.
pub async fn fetch(policy: &Policy, url: &str) -> Result<(Vec<u8>, &'static str), DownloadError> {
    let url = Url::parse(url).map_err(|e| DownloadError::Refused(e.to_string()))?;
    let client = pinned_client(policy, &url, true).await?;
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| refusal(&e).unwrap_or_else(|| DownloadError::Failed(describe(&e))))?
        .error_for_status()
        .map_err(|e| DownloadError::Failed(describe(&e)))?;
    if response
        .content_length()
        .is_some_and(|n| n > policy.max_bytes as u64)
    {
        return Err(DownloadError::TooLarge(policy.max_bytes));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| DownloadError::Failed(describe(&e)))?
    {
        if bytes.len() + chunk.len() > policy.max_bytes {
            return Err(DownloadError::TooLarge(policy.max_bytes));
        }
        bytes.extend_from_slice(&chunk);
    }
    let content_type = sniff(&bytes).ok_or(DownloadError::NotAnImage)?;
    Ok((bytes, content_type))
}

/// A redirect our policy refused, which reqwest reports wrapped in its own error.
fn refusal(error: &(dyn std::error::Error + 'static)) -> Option<DownloadError> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<DownloadError>() {
            return Some(refused.clone());
        }
        source = cause.source();
    }
    None
}

/// An error with its causes: reqwest keeps the reason a redirect was refused in the source chain.
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(
                is_forbidden(ip.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))),
                "{ip}"
            );
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(
                !is_forbidden(ip.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))),
                "{ip}"
            );
        }
    }
}
