//! Trace replay from CSV: one row per request (timestamps), or a rate table.
//!
//! Formats, chosen by `format` in the scenario:
//! - `requests`: one row per request. The time column (`column`, else the first of `timestamp`,
//!   `TIMESTAMP`, `time_s`, else the first column) holds seconds (`12.5`) or a date-time
//!   (`2023-11-16 18:17:03.9799600`, the Azure LLM trace format). Times are taken relative to the
//!   first row, so a trace starting at any wall-clock time (or at exactly 0) replays from t = 0.
//!   Rows must be in time order.
//! - `rate_table`: columns `time_s` and `rps`; each rate holds until the next row (the last for one
//!   step, the spacing of the last two rows).
//!
//! `time_scale` stretches time (0.5 replays twice as fast); `rate_scale` multiplies the rate (for a
//! request trace, each row becomes `floor(k)` or `floor(k) + 1` arrivals at its time, the extra one
//! with probability `frac(k)` from the `trace_scale` stream).

use std::path::{Path, PathBuf};

use super::RateSchedule;
use crate::text::clip_quote;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceFormat {
    Requests,
    RateTable,
}

#[derive(Clone, Debug)]
pub struct TraceSpec {
    pub file: PathBuf,
    pub format: TraceFormat,
    pub column: Option<String>,
    pub time_scale: f64,
    pub rate_scale: f64,
    /// `(prompt, output)` token-count columns to read along (request traces).
    pub token_columns: Option<(String, String)>,
}

/// A trace row that cannot be used: names the file, the row (1-based line in the file, the header
/// being line 1) and the field.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{file}: cannot read the trace: {message}")]
    Io { file: String, message: String },
    #[error("{file} line {row}: `{field}`: {message}")]
    Row { file: String, row: u64, field: String, message: String },
    #[error("{file}: {message}")]
    Shape { file: String, message: String },
}

/// What a trace file holds once read.
#[derive(Clone, Debug)]
pub enum TraceData {
    /// Arrival times in microseconds from the first row, already time-scaled, in order; and the
    /// rows' `(prompt, output)` token counts when asked for.
    Requests {
        times: Vec<u64>,
        tokens: Option<Vec<(u32, u32)>>,
    },
    Rates(RateSchedule),
}

pub fn read_trace(spec: &TraceSpec) -> Result<TraceData, TraceError> {
    let file = spec.file.display().to_string();
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .flexible(false)
        .from_path(&spec.file)
        .map_err(|e| TraceError::Io { file: file.clone(), message: e.to_string() })?;
    let headers = rdr.headers().map_err(|e| csv_error(&file, e))?.clone();
    match spec.format {
        TraceFormat::Requests => {
            let col = pick_column(&headers, spec.column.as_deref(), &["timestamp", "TIMESTAMP", "time_s"])
                .ok_or_else(|| missing_column(&file, spec.column.as_deref().unwrap_or("timestamp"), &headers))?;
            let name = headers[col].to_string();
            let token_cols = match &spec.token_columns {
                None => None,
                Some((p, o)) => Some((
                    pick_column(&headers, Some(p), &[]).ok_or_else(|| missing_column(&file, p, &headers))?,
                    pick_column(&headers, Some(o), &[]).ok_or_else(|| missing_column(&file, o, &headers))?,
                )),
            };
            let mut tokens = token_cols.map(|_| Vec::new());
            let mut first: Option<i64> = None;
            let mut prev = 0i64;
            let mut times = Vec::new();
            for rec in rdr.records() {
                let rec = rec.map_err(|e| csv_error(&file, e))?;
                let row = rec.position().map(|p| p.line()).unwrap_or(0);
                let raw = &rec[col];
                let us = parse_time_us(raw).ok_or_else(|| TraceError::Row {
                    file: file.clone(),
                    row,
                    field: name.clone(),
                    message: format!(
                        "`{}` is neither seconds nor a date-time like 2023-11-16 18:17:03.98",
                        clip_quote(raw)
                    ),
                })?;
                let base = *first.get_or_insert(us);
                if us < prev {
                    return Err(TraceError::Row {
                        file: file.clone(),
                        row,
                        field: name.clone(),
                        message: format!(
                            "`{}` is earlier than the row before; rows must be in time order",
                            clip_quote(raw)
                        ),
                    });
                }
                prev = us;
                times.push((((us - base) as f64) * spec.time_scale).round() as u64);
                if let (Some((pc, oc)), Some(t)) = (token_cols, tokens.as_mut()) {
                    let count = |c: usize| -> Result<u32, TraceError> {
                        rec[c].parse::<u32>().ok().filter(|v| *v > 0).ok_or_else(|| TraceError::Row {
                            file: file.clone(),
                            row,
                            field: headers[c].to_string(),
                            message: format!("`{}` is not a token count >= 1", clip_quote(&rec[c])),
                        })
                    };
                    t.push((count(pc)?, count(oc)?));
                }
            }
            if times.is_empty() {
                return Err(TraceError::Shape { file, message: "the trace has no rows".into() });
            }
            Ok(TraceData::Requests { times, tokens })
        }
        TraceFormat::RateTable => {
            let tcol =
                pick_column(&headers, None, &["time_s"]).ok_or_else(|| missing_column(&file, "time_s", &headers))?;
            let rcol = pick_column(&headers, None, &["rps"]).ok_or_else(|| missing_column(&file, "rps", &headers))?;
            let mut rows: Vec<(f64, f64)> = Vec::new();
            for rec in rdr.records() {
                let rec = rec.map_err(|e| csv_error(&file, e))?;
                let row = rec.position().map(|p| p.line()).unwrap_or(0);
                let t = parse_number(&file, row, "time_s", &rec[tcol])?;
                let r = parse_number(&file, row, "rps", &rec[rcol])?;
                if r < 0.0 {
                    return Err(TraceError::Row {
                        file,
                        row,
                        field: "rps".into(),
                        message: format!("is negative ({r}); rates must be >= 0"),
                    });
                }
                if t < 0.0 || rows.last().is_some_and(|&(p, _)| t <= p) {
                    return Err(TraceError::Row {
                        file,
                        row,
                        field: "time_s".into(),
                        message: format!("{t} is not after the row before; times must increase from 0"),
                    });
                }
                rows.push((t, r));
            }
            if rows.is_empty() {
                return Err(TraceError::Shape { file, message: "the rate table has no rows".into() });
            }
            let step = if rows.len() >= 2 { rows[rows.len() - 1].0 - rows[rows.len() - 2].0 } else { 1.0 };
            let mut s = RateSchedule::from_table(&rows, step);
            s.scale_time(spec.time_scale);
            // Stretching time by k spreads the same requests over k times as long: divide the rate.
            s.scale_rates(spec.rate_scale / spec.time_scale);
            Ok(TraceData::Rates(s))
        }
    }
}

fn pick_column(headers: &csv::StringRecord, wanted: Option<&str>, defaults: &[&str]) -> Option<usize> {
    if let Some(w) = wanted {
        return headers.iter().position(|h| h == w);
    }
    defaults.iter().find_map(|d| headers.iter().position(|h| h == *d)).or(if defaults.len() == 3 {
        Some(0)
    } else {
        None
    })
}

fn missing_column(file: &str, col: &str, headers: &csv::StringRecord) -> TraceError {
    TraceError::Row {
        file: file.to_string(),
        row: 1,
        field: col.to_string(),
        message: format!(
            "no such column; the header has: {}",
            clip_quote(&headers.iter().collect::<Vec<_>>().join(", "))
        ),
    }
}

fn csv_error(file: &str, e: csv::Error) -> TraceError {
    let row = e.position().map(|p| p.line()).unwrap_or(0);
    TraceError::Row { file: file.to_string(), row, field: "(row)".into(), message: e.to_string() }
}

fn parse_number(file: &str, row: u64, field: &str, raw: &str) -> Result<f64, TraceError> {
    raw.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| TraceError::Row {
        file: file.to_string(),
        row,
        field: field.to_string(),
        message: format!("`{}` is not a number", clip_quote(raw)),
    })
}

/// Seconds (`12.5`) or a date-time (`YYYY-MM-DD HH:MM:SS[.fraction]`, `T` also accepted), as
/// microseconds (since the Unix epoch for date-times).
pub fn parse_time_us(raw: &str) -> Option<i64> {
    if let Ok(s) = raw.parse::<f64>() {
        return if s.is_finite() && s >= 0.0 { Some((s * 1e6).round() as i64) } else { None };
    }
    let b = raw.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b' ' || b[10] == b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| raw.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut micros = 0i64;
    if b.len() > 19 {
        if b[19] != b'.' {
            return None;
        }
        let frac = &raw[20..];
        if frac.is_empty() || !frac.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        // Keep microseconds; round on the seventh digit (the Azure trace has 100 ns ticks).
        let digits: Vec<i64> = frac.bytes().map(|c| (c - b'0') as i64).collect();
        for k in 0..6 {
            micros = micros * 10 + digits.get(k).copied().unwrap_or(0);
        }
        if digits.get(6).copied().unwrap_or(0) >= 5 {
            micros += 1;
        }
    }
    let days = days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + s) * 1_000_000) + micros)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Resolves a trace path written in a scenario: relative to the scenario file's folder.
pub fn resolve_path(scenario_file: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        scenario_file.parent().unwrap_or(Path::new(".")).join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn parses_azure_timestamps() {
        let a = parse_time_us("2023-11-16 18:17:03.9799600").unwrap();
        let b = parse_time_us("2023-11-16 18:17:04.0319600").unwrap();
        assert_eq!(b - a, 52_000); // 4.03196 - 3.97996 = 0.052 s
        assert_eq!(parse_time_us("1970-01-02 00:00:00"), Some(86_400_000_000));
        assert_eq!(parse_time_us("12.5"), Some(12_500_000));
        assert_eq!(parse_time_us("2023-13-16 18:17:03"), None);
        assert_eq!(parse_time_us("yesterday"), None);
    }

    fn write(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    #[test]
    fn request_trace_starting_at_zero_without_final_newline() {
        let f = write("timestamp,x\n0,1\n0.5,1\n2.0,1");
        let spec = TraceSpec {
            file: f.path().into(),
            format: TraceFormat::Requests,
            column: None,
            time_scale: 2.0,
            rate_scale: 1.0,
            token_columns: None,
        };
        match read_trace(&spec).unwrap() {
            TraceData::Requests { times, .. } => assert_eq!(times, vec![0, 1_000_000, 4_000_000]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_rows_name_file_row_and_field() {
        let f = write("timestamp\n0.0\n1.0\nbanana\n");
        let spec = TraceSpec {
            file: f.path().into(),
            format: TraceFormat::Requests,
            column: None,
            time_scale: 1.0,
            rate_scale: 1.0,
            token_columns: None,
        };
        let e = read_trace(&spec).unwrap_err().to_string();
        assert!(e.contains("line 4") && e.contains("`timestamp`") && e.contains("banana"), "{e}");

        let f = write("time_s,rps\n0,10\n1,-3\n");
        let spec = TraceSpec {
            file: f.path().into(),
            format: TraceFormat::RateTable,
            column: None,
            time_scale: 1.0,
            rate_scale: 1.0,
            token_columns: None,
        };
        let e = read_trace(&spec).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("`rps`") && e.contains("negative"), "{e}");
    }
}
