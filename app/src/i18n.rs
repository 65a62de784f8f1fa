//! Chinese and English UI text. The language comes from the `lang` cookie, else
//! the browser's `Accept-Language`; the server renders `<html lang>` with it and
//! the browser reads it back on hydration, so both render the same text.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        let code = code.trim().to_ascii_lowercase();
        if code.starts_with("zh") {
            Some(Lang::Zh)
        } else if code.starts_with("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The first supported language of an `Accept-Language` header.
    pub fn from_accept_language(header: &str) -> Self {
        header
            .split(',')
            .filter_map(|part| Self::parse(part.split(';').next().unwrap_or("")))
            .next()
            .unwrap_or_default()
    }

    pub fn other(self) -> Self {
        match self {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        }
    }

    /// Formats an amount of credits with grouping, e.g. `1,450`.
    pub fn amount(self, value: i64) -> String {
        let digits = value.unsigned_abs().to_string();
        let mut grouped = String::new();
        for (index, digit) in digits.chars().enumerate() {
            if index > 0 && (digits.len() - index).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        if value < 0 {
            format!("-{grouped}")
        } else {
            grouped
        }
    }

    /// A price in cents, e.g. `$9.90` / `US$9.90`.
    pub fn price(self, cents: i64) -> String {
        let text = format!("{}.{:02}", cents / 100, cents % 100);
        match self {
            Lang::En => format!("${text}"),
            Lang::Zh => format!("US${text}"),
        }
    }

    pub fn t(self, key: Key) -> &'static str {
        let (en, zh) = match key {
            Key::Brand => ("Credits", "积分"),
            Key::Home => ("Balance", "余额"),
            Key::History => ("History", "明细"),
            Key::TestPage => ("Test", "测试"),
            Key::Admin => ("Admin", "管理"),
            Key::YourCredits => ("Your credits", "我的积分"),
            Key::Remaining => ("Remaining", "可用"),
            Key::Total => ("Total", "总计"),
            Key::Used => ("Used", "已用"),
            Key::Bought => ("Bought", "购买"),
            Key::Free => ("Free", "赠送"),
            Key::Held => ("Held", "冻结"),
            Key::NextExpiry => ("Next expiry", "即将过期"),
            Key::Loading => ("Loading…", "加载中…"),
            Key::Refresh => ("Refresh", "刷新"),
            Key::Add => ("Add", "增加"),
            Key::Deduct => ("Deduct", "扣除"),
            Key::Amount => ("Amount", "数量"),
            Key::HasEnough => ("Has enough?", "是否足够？"),
            Key::Yes => ("Yes", "是"),
            Key::No => ("No", "否"),
            Key::Plans => ("Buy credits", "购买积分"),
            Key::Buy => ("Buy", "购买"),
            Key::CreditsWord => ("credits", "积分"),
            Key::Generate => ("Generate video", "生成视频"),
            Key::Generating => ("Generating…", "生成中…"),
            Key::VideoReady => ("Video ready", "视频已生成"),
            Key::Costs => ("costs", "消耗"),
            Key::SignIn => ("Sign in", "登录"),
            Key::SignUp => ("Create account", "注册"),
            Key::SignOut => ("Sign out", "退出"),
            Key::Email => ("Email", "邮箱"),
            Key::Password => ("Password", "密码"),
            Key::SignedOut => ("Sign in to see your credits.", "登录后查看积分。"),
            Key::Low => ("Your balance is low.", "余额不足。"),
            Key::Depleted => ("You have no credits left.", "积分已用完。"),
            Key::Expiring => ("Some credits expire soon.", "部分积分即将过期。"),
            Key::NeedMore => ("more credits needed", "积分不足，还差"),
            Key::BuyMore => ("Buy more", "去购买"),
            Key::Kind => ("Kind", "类型"),
            Key::Change => ("Change", "变动"),
            Key::BalanceAfter => ("Balance", "余额"),
            Key::Reason => ("Reason", "原因"),
            Key::When => ("When", "时间"),
            Key::Older => ("Older", "更早"),
            Key::Log => ("Log", "日志"),
            Key::TestWebhook => ("Signed test webhook", "签名测试回调"),
            Key::CreemReport => ("Creem self-test", "Creem 自检"),
            Key::Search => ("Search users", "搜索用户"),
            Key::Check => ("Consistency check", "一致性检查"),
            Key::Stats => ("Daily statistics", "每日统计"),
            Key::Granted => ("Granted", "赠送"),
            Key::Purchased => ("Purchased", "购买"),
            Key::Spent => ("Spent", "消耗"),
            Key::Batch => ("Batch adjust (CSV)", "批量调整（CSV）"),
            Key::Deliveries => ("Webhook deliveries", "回调记录"),
            Key::Set => ("Set", "设为"),
            Key::Apply => ("Apply", "执行"),
            Key::Language => ("中文", "English"),
            Key::NetworkError => ("Network problem; retrying…", "网络异常，正在重试…"),
        };
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }
}

/// Every piece of UI text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Brand,
    Home,
    History,
    TestPage,
    Admin,
    YourCredits,
    Remaining,
    Total,
    Used,
    Bought,
    Free,
    Held,
    NextExpiry,
    Loading,
    Refresh,
    Add,
    Deduct,
    Amount,
    HasEnough,
    Yes,
    No,
    Plans,
    Buy,
    CreditsWord,
    Generate,
    Generating,
    VideoReady,
    Costs,
    SignIn,
    SignUp,
    SignOut,
    Email,
    Password,
    SignedOut,
    Low,
    Depleted,
    Expiring,
    NeedMore,
    BuyMore,
    Kind,
    Change,
    BalanceAfter,
    Reason,
    When,
    Older,
    Log,
    TestWebhook,
    CreemReport,
    Search,
    Check,
    Stats,
    Granted,
    Purchased,
    Spent,
    Batch,
    Deliveries,
    Set,
    Apply,
    Language,
    NetworkError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_and_amounts() {
        assert_eq!(Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("fr-FR,en-US;q=0.8"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
        assert_eq!(Lang::En.amount(1450), "1,450");
        assert_eq!(Lang::Zh.amount(-1234567), "-1,234,567");
        assert_eq!(Lang::En.price(990), "$9.90");
        assert_eq!(Lang::Zh.t(Key::Remaining), "可用");
    }
}
