//! Which entries an export keeps: a time window, an actor, an action.

use conclave_audit::Event;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use crate::error::AuditError;

/// Parses a time given on the command line, as Unix seconds: RFC 3339
/// (`2026-11-24T10:00:00Z`, any offset), a date (`2026-11-24`, meaning
/// 00:00:00 UTC that day) or Unix seconds (`1795529682`).
///
/// Fractions of a second round up: event times are whole seconds, so
/// `t >= since` and `t < until` then mean what the fraction said.
pub fn parse_time(text: &str, flag: &str) -> Result<u64, AuditError> {
    let invalid = |why: &str| {
        AuditError::Usage(format!(
            "invalid time {text:?} for {flag}: {why}; use RFC 3339 (2026-11-24T10:00:00Z), a date (2026-11-24) or Unix seconds"
        ))
    };
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| invalid("too many seconds"));
    }
    let unix = if let Ok(moment) = OffsetDateTime::parse(text, &Rfc3339) {
        moment.unix_timestamp() + i64::from(moment.nanosecond() > 0)
    } else if let Ok(date) = Date::parse(text, format_description!("[year]-[month]-[day]")) {
        date.midnight().assume_utc().unix_timestamp()
    } else {
        return Err(invalid("not a time"));
    };
    u64::try_from(unix).map_err(|_| invalid("before 1970"))
}

/// The entries an export keeps. Empty fields keep everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Keep entries at or after this time (Unix seconds).
    pub since: Option<u64>,
    /// Keep entries strictly before this time.
    pub until: Option<u64>,
    /// Keep entries by this account.
    pub actor: Option<String>,
    /// Keep entries of this action.
    pub action: Option<String>,
}

impl Filter {
    /// A filter from the command line's text values.
    pub fn parse(
        since: Option<&str>,
        until: Option<&str>,
        actor: Option<String>,
        action: Option<String>,
    ) -> Result<Self, AuditError> {
        let since = since.map(|t| parse_time(t, "--since")).transpose()?;
        let until = until.map(|t| parse_time(t, "--until")).transpose()?;
        if let (Some(since), Some(until)) = (since, until)
            && since >= until
        {
            return Err(AuditError::Usage(format!(
                "--since ({}) is not before --until ({}): no entry could match",
                conclave_audit::rfc3339(since),
                conclave_audit::rfc3339(until)
            )));
        }
        Ok(Self {
            since,
            until,
            actor,
            action,
        })
    }

    /// Whether `event` is kept.
    pub fn keeps(&self, event: &Event) -> bool {
        self.since.is_none_or(|since| event.time >= since)
            && self.until.is_none_or(|until| event.time < until)
            && self
                .actor
                .as_deref()
                .is_none_or(|actor| event.actor.as_deref() == Some(actor))
            && self
                .action
                .as_deref()
                .is_none_or(|action| event.action == action)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn times_parse_in_three_spellings() {
        assert_eq!(
            parse_time("2026-11-24T14:14:42Z", "--since").unwrap(),
            1_795_529_682
        );
        assert_eq!(
            parse_time("2026-11-24T15:14:42+01:00", "--since").unwrap(),
            1_795_529_682
        );
        assert_eq!(
            parse_time("2026-11-24T14:14:41.5Z", "--since").unwrap(),
            1_795_529_682
        );
        assert_eq!(
            parse_time("2026-11-24", "--since").unwrap(),
            1_795_529_682 - (14 * 3600 + 14 * 60 + 42)
        );
        assert_eq!(parse_time("1795529682", "--since").unwrap(), 1_795_529_682);
        assert_eq!(parse_time("0", "--until").unwrap(), 0);
    }

    #[test]
    fn bad_times_say_what_is_accepted() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-11-24 10:00",
            "2026-11-24T10:00:00",
            "-5",
            "1969-12-31",
            "99999999999999999999999",
        ] {
            let error = parse_time(bad, "--since").unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("invalid time {bad:?} for --since")),
                "{error}"
            );
            assert!(error.contains("RFC 3339"), "{error}");
        }
    }

    #[test]
    fn filters_keep_the_matching_entries() {
        let filter = Filter::parse(
            Some("2026-11-24"),
            Some("2026-11-25"),
            Some("alice".into()),
            None,
        )
        .unwrap();
        let at = |time: u64, actor: &str| Event::new(0, time, "login").actor(actor);
        assert!(filter.keeps(&at(1_795_529_682, "alice")));
        assert!(!filter.keeps(&at(1_795_529_682, "bob")));
        assert!(!filter.keeps(&at(1_795_529_682 + 86_400, "alice")));
        assert!(!filter.keeps(&Event::new(0, 1_795_529_682, "login")));
        let by_action = Filter::parse(None, None, None, Some("login".into())).unwrap();
        assert!(by_action.keeps(&at(5, "bob")));
        assert!(!by_action.keeps(&Event::new(0, 5, "device_added")));
        let error = Filter::parse(Some("2026-11-25"), Some("2026-11-24"), None, None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not before --until"), "{error}");
    }
}
