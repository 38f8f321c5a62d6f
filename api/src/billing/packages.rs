//! Credit packages from `config/packages.toml`, validated at start-up.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackagesFile {
    packages: Vec<Package>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Package {
    #[schema(example = "starter")]
    pub id: String,
    pub label: String,
    pub credits: i64,
    /// Extra credits on top of `credits`.
    #[serde(default)]
    pub bonus_credits: i64,
    /// The price in the currency's smallest unit (cents).
    pub price_cents: i64,
    /// ISO 4217, lower case.
    #[schema(example = "usd")]
    pub currency: String,
    #[serde(default, skip_serializing)]
    pub stripe_price_id: Option<String>,
}

impl Package {
    pub fn total_credits(&self) -> i64 {
        self.credits + self.bonus_credits
    }
}

#[derive(Debug, Clone)]
pub struct Packages(Vec<Package>);

impl Packages {
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the credit packages {} (EASEL_PACKAGES_PATH): {e}",
                path.display()
            )
        })?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("credit packages {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: PackagesFile = toml::from_str(text)?;
        let mut seen = std::collections::HashSet::new();
        for p in &file.packages {
            let at = format!("package {:?}", p.id);
            anyhow::ensure!(
                !p.id.is_empty()
                    && p.id.len() <= 64
                    && p.id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{at}: id must be 1–64 characters of a-z, 0-9 and '-'"
            );
            anyhow::ensure!(seen.insert(p.id.clone()), "{at}: id appears twice");
            anyhow::ensure!(p.credits > 0, "{at}: credits must be at least 1");
            anyhow::ensure!(
                p.bonus_credits >= 0,
                "{at}: bonus_credits must not be negative"
            );
            anyhow::ensure!(
                p.price_cents >= 50,
                "{at}: price_cents must be at least 50 (Stripe's minimum)"
            );
            anyhow::ensure!(
                p.currency.len() == 3 && p.currency.bytes().all(|b| b.is_ascii_lowercase()),
                "{at}: currency must be a lower-case ISO 4217 code such as usd"
            );
            anyhow::ensure!(
                p.stripe_price_id
                    .as_ref()
                    .is_none_or(|id| id.starts_with("price_")),
                "{at}: stripe_price_id must be a Stripe Price id (price_…)"
            );
        }
        anyhow::ensure!(!file.packages.is_empty(), "no packages defined");
        Ok(Self(file.packages))
    }

    pub fn all(&self) -> &[Package] {
        &self.0
    }

    pub fn get(&self, id: &str) -> Option<&Package> {
        self.0.iter().find(|p| p.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_packages_are_valid() -> anyhow::Result<()> {
        let packages = Packages::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/packages.toml"
        )))?;
        assert!(
            packages
                .get("starter")
                .is_some_and(|p| p.total_credits() == 100)
        );
        Ok(())
    }

    #[test]
    fn mistakes_name_the_package() {
        let bad = "[[packages]]\nid = \"x\"\nlabel = \"X\"\ncredits = 0\nprice_cents = 500\ncurrency = \"usd\"\n";
        let error = Packages::parse(bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("package \"x\"") && error.contains("credits"),
            "{error}"
        );
    }
}
