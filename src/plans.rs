//! Plans and the pricing settings every figure depends on.
//!
//! Defaults follow the contract; the server overrides them from the config file.

use serde::{Deserialize, Serialize};

/// A credit pack sold through Creem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub name: String,
    pub price_cents: i64,
    pub credits: i64,
    /// The Creem product id that maps a payment to this plan (empty: not sold yet).
    #[serde(default)]
    pub creem_product_id: String,
    /// Days the plan's credits stay valid (none: they never expire).
    #[serde(default)]
    pub validity_days: Option<i64>,
}

/// What the ledger needs to know about pricing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub initial_credits: i64,
    pub cost_per_video: i64,
    pub plans: Vec<Plan>,
    /// Days the sign-up grant stays valid (none: it never expires).
    #[serde(default)]
    pub initial_valid_days: Option<i64>,
    /// Subscription credits: `None` expire at the end of the paid period;
    /// `Some(cap)` roll over, keeping at most `cap` unspent.
    #[serde(default)]
    pub subscription_rollover_cap: Option<i64>,
}

pub const DEFAULT_INITIAL_CREDITS: i64 = 8;
pub const DEFAULT_COST_PER_VIDEO: i64 = 10;

/// The contract's three default plans.
pub fn default_plans() -> Vec<Plan> {
    [("starter", 990, 115), ("standard", 3000, 355), ("premium", 9900, 1450)]
        .into_iter()
        .map(|(name, price_cents, credits)| Plan {
            name: name.to_string(),
            price_cents,
            credits,
            creem_product_id: String::new(),
            validity_days: None,
        })
        .collect()
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            initial_credits: DEFAULT_INITIAL_CREDITS,
            cost_per_video: DEFAULT_COST_PER_VIDEO,
            plans: default_plans(),
            initial_valid_days: None,
            subscription_rollover_cap: None,
        }
    }
}

impl Settings {
    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|plan| plan.name == name)
    }

    /// Checks the rules a config file could break; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        let limit = crate::amount::MAX_AMOUNT_EXCLUSIVE;
        if !(0..limit).contains(&self.initial_credits) {
            return Err(format!("initial_credits must be 0..{limit}"));
        }
        if !(1..limit).contains(&self.cost_per_video) {
            return Err(format!("cost_per_video must be 1..{limit}"));
        }
        if self.initial_valid_days.is_some_and(|days| !(1..=3650).contains(&days)) {
            return Err("initial_credits_valid_days must be 1 to 3650".into());
        }
        if self.subscription_rollover_cap.is_some_and(|cap| !(0..limit).contains(&cap)) {
            return Err(format!("subscriptions.rollover_cap must be 0..{limit}"));
        }
        for (index, plan) in self.plans.iter().enumerate() {
            if plan.name.is_empty() || plan.name.len() > 64 {
                return Err(format!("plans[{index}].name must be 1..=64 characters"));
            }
            if !(1..limit).contains(&plan.credits) {
                return Err(format!("plans[{index}].credits must be 1..{limit}"));
            }
            if plan.price_cents < 0 {
                return Err(format!("plans[{index}].price_cents must not be negative"));
            }
            if plan.validity_days.is_some_and(|days| !(1..=3650).contains(&days)) {
                return Err(format!("plans[{index}].validity_days must be 1 to 3650"));
            }
            if self.plans[..index].iter().any(|other| other.name == plan.name) {
                return Err(format!("plans[{index}].name `{}` appears twice", plan.name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let settings = Settings::default();
        assert_eq!(settings.initial_credits, 8);
        assert_eq!(settings.cost_per_video, 10);
        let starter = settings.plan("starter").unwrap();
        assert_eq!((starter.price_cents, starter.credits), (990, 115));
        assert_eq!(settings.plan("standard").unwrap().credits, 355);
        assert_eq!(settings.plan("premium").unwrap().credits, 1450);
        assert!(settings.validate().is_ok());
    }

    #[test]
    fn duplicate_plan_names_are_refused_by_name() {
        let mut settings = Settings::default();
        settings.plans[1].name = "starter".into();
        assert!(settings.validate().unwrap_err().contains("plans[1].name"));
    }
}
