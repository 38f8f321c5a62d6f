//! The moderation boundary: prompt rules from `config/moderation.toml`, checked before any credit
//! is reserved. A refusal names the rule's category, never the secret term list.

use crate::error::{ApiError, ErrorCode, FieldError};
use regex::Regex;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rules: Vec<RuleEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    category: String,
    #[serde(default)]
    terms: Vec<String>,
    #[serde(default)]
    patterns: Vec<String>,
}

#[derive(Debug, Clone)]
struct Rule {
    category: String,
    terms: Vec<String>,
    patterns: Vec<Regex>,
}

#[derive(Debug, Clone, Default)]
pub struct Moderation {
    rules: Vec<Rule>,
}

impl Moderation {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the moderation rules {} (EASEL_MODERATION_PATH): {e}",
                path.display()
            )
        })?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("moderation rules {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: RulesFile = toml::from_str(text)?;
        let rules = file
            .rules
            .into_iter()
            .map(|entry| {
                let patterns = entry
                    .patterns
                    .iter()
                    .map(|p| {
                        Regex::new(p).map_err(|e| {
                            anyhow::anyhow!("category {:?}: bad pattern: {e}", entry.category)
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                Ok(Rule {
                    terms: entry.terms.iter().map(|t| t.to_lowercase()).collect(),
                    category: entry.category,
                    patterns,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { rules })
    }

    /// The category of the first rule the text breaks, if any.
    pub fn violation(&self, text: &str) -> Option<&str> {
        let lower = text.to_lowercase();
        self.rules
            .iter()
            .find(|rule| {
                rule.terms.iter().any(|t| lower.contains(t.as_str()))
                    || rule.patterns.iter().any(|p| p.is_match(text))
            })
            .map(|rule| rule.category.as_str())
    }

    pub fn check(&self, field: &str, text: &str) -> Result<(), ApiError> {
        match self.violation(text) {
            None => Ok(()),
            Some(category) => Err(ApiError {
                errors: vec![FieldError {
                    field: field.to_owned(),
                    message: format!("rejected by the moderation rule category {category}"),
                }],
                ..ApiError::new(
                    ErrorCode::PromptRejected,
                    format!("the {field} was rejected by the moderation rule category {category}"),
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_and_patterns_name_their_category_only() -> anyhow::Result<()> {
        let moderation = Moderation::parse(
            r#"
            [[rules]]
            category = "weapons"
            terms = ["Nerve Agent"]
            patterns = ['(?i)\bbomb\s+recipe\b']
            "#,
        )?;
        assert_eq!(moderation.violation("a NERVE agent lab"), Some("weapons"));
        assert_eq!(moderation.violation("my Bomb   Recipe"), Some("weapons"));
        assert_eq!(moderation.violation("a bath bomb"), None);
        let error = moderation.check("prompt", "nerve agent").err();
        let detail = error.map(|e| e.detail).unwrap_or_default();
        assert!(
            detail.contains("weapons") && !detail.to_lowercase().contains("nerve"),
            "{detail}"
        );
        assert!(Moderation::parse("[[rules]]\ncategory = \"x\"\npatterns = ['(']").is_err());
        Ok(())
    }

    #[test]
    fn the_shipped_rules_load() -> anyhow::Result<()> {
        let shipped = Moderation::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/moderation.toml"
        )))?;
        assert_eq!(
            shipped.violation("a forbidden-example-term here"),
            Some("example")
        );
        Ok(())
    }
}
