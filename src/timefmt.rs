//! Timestamps in the two shapes hardrun writes: runc's log lines (seconds, like
//! logrus) and audit records (nanoseconds).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `2026-01-02T03:04:05Z`
pub fn now_rfc3339_seconds() -> String {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&Rfc3339).unwrap_or_default()
}

/// `2026-01-02T03:04:05.123456789Z`
pub fn rfc3339_nanos(t: OffsetDateTime) -> String {
    // Rfc3339 trims trailing zeros of the fraction; audit readers want a fixed width.
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

pub fn now_rfc3339_nanos() -> String {
    rfc3339_nanos(OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    #[test]
    fn shapes() {
        let s = super::now_rfc3339_seconds();
        assert_eq!(s.len(), 20, "{s}");
        let n = super::now_rfc3339_nanos();
        assert_eq!(n.len(), 30, "{n}");
        assert!(n.ends_with('Z'));
    }
}
