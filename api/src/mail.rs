//! Outgoing email. With `EASEL_SMTP_URL`, over SMTP; without it, outside production, each message
//! is written as an `.eml` file under `EASEL_DATA_DIR/mail` (open it with any mail program), so
//! `make run` can go through a password reset with no mail server. In production without SMTP
//! nothing is sent, and what needs mail says so.

use crate::config::MailConfig;
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// How long one message may take to hand to the SMTP server.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
}

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Folder(AsyncFileTransport<Tokio1Executor>, std::path::PathBuf),
    None,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = match &self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::Folder(..) => "folder",
            Transport::None => "none",
        };
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .field("transport", &transport)
            .finish()
    }
}

impl Mailer {
    pub fn new(config: &MailConfig) -> anyhow::Result<Self> {
        let from: Mailbox = config.from.parse()?;
        let transport = if let Some(url) = &config.smtp_url {
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                .map_err(|_| anyhow::anyhow!("EASEL_SMTP_URL: not a usable SMTP URL"))?
                .timeout(Some(SMTP_TIMEOUT))
                .build();
            Transport::Smtp(transport)
        } else if let Some(folder) = &config.folder {
            Transport::Folder(AsyncFileTransport::new(folder), folder.clone())
        } else {
            Transport::None
        };
        Ok(Self { from, transport })
    }

    /// Whether mail goes anywhere.
    pub fn configured(&self) -> bool {
        !matches!(self.transport, Transport::None)
    }

    /// 503 `email_not_configured` when mail goes nowhere, saying what therefore cannot be done.
    pub fn required_for(&self, what: &str) -> Result<(), crate::error::ApiError> {
        if self.configured() {
            return Ok(());
        }
        Err(crate::error::ApiError::new(
            crate::error::ErrorCode::EmailNotConfigured,
            format!("this server sends no email, so {what}; ask its operator"),
        ))
    }

    /// Sends a plain-text message to `to`.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> anyhow::Result<()> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(to.parse()?)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message).await?;
            }
            Transport::Folder(files, folder) => {
                tokio::fs::create_dir_all(folder).await?;
                let id = files.send(message).await?;
                tracing::info!(file = %folder.join(format!("{id}.eml")).display(), "mail written (no EASEL_SMTP_URL)");
            }
            Transport::None => anyhow::bail!("no mail transport is configured (EASEL_SMTP_URL)"),
        }
        Ok(())
    }
}
