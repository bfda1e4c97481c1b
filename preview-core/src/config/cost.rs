//! `[cost]`: the price table the cost estimate uses (Fly.io's, dated, unless overridden).

use serde::Deserialize;
use toml::Spanned;

use super::loader::Loader;
use super::raw::S;
use crate::cost::PriceTable;
use crate::error::Result;

/// The TOML shape of `[cost]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCost {
    #[serde(default = "yes")]
    show: bool,
    dated: Option<S>,
    source: Option<String>,
    currency: Option<S>,
    shared_cpu_month: Option<Spanned<f64>>,
    performance_cpu_month: Option<Spanned<f64>>,
    memory_gb_month: Option<Spanned<f64>>,
    stopped_gb_month: Option<Spanned<f64>>,
    rootfs_gb: Option<Spanned<f64>>,
    ipv4_month: Option<Spanned<f64>>,
    apps_per_day: Option<Spanned<f64>>,
}

fn yes() -> bool {
    true
}

impl Default for RawCost {
    fn default() -> Self {
        Self {
            show: true,
            dated: None,
            source: None,
            currency: None,
            shared_cpu_month: None,
            performance_cpu_month: None,
            memory_gb_month: None,
            stopped_gb_month: None,
            rootfs_gb: None,
            ipv4_month: None,
            apps_per_day: None,
        }
    }
}

/// The cost estimate's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CostDef {
    /// Whether reports and `status` show the estimate.
    pub show: bool,
    /// The prices.
    pub table: PriceTable,
}

/// The table: Fly.io's of April 2024, with any price the file sets instead. A file that sets a
/// price must date it (`dated`), so the estimate never carries a date its figures do not have.
pub(super) fn cost(l: &Loader<'_>, raw: &RawCost) -> Result<CostDef> {
    let mut t = PriceTable::fly_2024_04();
    let mut overridden: Option<&Spanned<f64>> = None;
    for (v, slot, key) in [
        (
            &raw.shared_cpu_month,
            &mut t.shared_cpu_month,
            "cost.shared_cpu_month",
        ),
        (
            &raw.performance_cpu_month,
            &mut t.performance_cpu_month,
            "cost.performance_cpu_month",
        ),
        (
            &raw.memory_gb_month,
            &mut t.memory_gb_month,
            "cost.memory_gb_month",
        ),
        (
            &raw.stopped_gb_month,
            &mut t.stopped_gb_month,
            "cost.stopped_gb_month",
        ),
        (&raw.rootfs_gb, &mut t.rootfs_gb, "cost.rootfs_gb"),
        (&raw.ipv4_month, &mut t.ipv4_month, "cost.ipv4_month"),
        (&raw.apps_per_day, &mut t.apps_per_day, "cost.apps_per_day"),
    ] {
        if let Some(v) = v {
            let x = *v.get_ref();
            if !x.is_finite() || x < 0.0 {
                return Err(l.err(&v.span(), key, "must be a number of at least 0"));
            }
            *slot = x;
            overridden = overridden.or(Some(v));
        }
    }
    match (&raw.dated, overridden) {
        (Some(d), _) => {
            let ok = {
                let s = d.get_ref();
                (s.len() == 7 || s.len() == 10)
                    && s.chars().enumerate().all(|(i, c)| {
                        if i == 4 || i == 7 {
                            c == '-'
                        } else {
                            c.is_ascii_digit()
                        }
                    })
            };
            if !ok {
                return Err(l.err(
                    &d.span(),
                    "cost.dated",
                    format!("{:?} is not a date (YYYY-MM or YYYY-MM-DD)", d.get_ref()),
                ));
            }
            t.dated = d.get_ref().clone();
            t.source = raw
                .source
                .clone()
                .unwrap_or_else(|| "preview.toml [cost]".into());
        }
        (None, Some(v)) => {
            return Err(l.err(
                &v.span(),
                "cost",
                "a price set here needs `dated = \"YYYY-MM-DD\"` (when it was published or checked), so the estimate shows the right date",
            ));
        }
        (None, None) => {}
    }
    if let Some(c) = &raw.currency {
        let s = c.get_ref();
        if s.len() != 3 || !s.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(l.err(
                &c.span(),
                "cost.currency",
                format!("{s:?} is not a currency code (three capital letters, e.g. \"EUR\")"),
            ));
        }
        t.currency = s.clone();
    }
    Ok(CostDef {
        show: raw.show,
        table: t,
    })
}
