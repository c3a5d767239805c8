//! A Prometheus HTTP API client: instant queries (`/api/v1/query`) returning labelled values.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// One sample of an instant query: its labels and value.
pub type PromSample = (BTreeMap<String, String>, f64);

pub struct PromClient {
    base: String,
    agent: ureq::Agent,
}

impl PromClient {
    pub fn new(base: &str, timeout: Duration) -> PromClient {
        PromClient {
            base: base.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new().timeout(timeout).build(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Evaluates `promql` now. NaN samples (e.g. a quantile over no requests) are left out.
    pub fn query(&self, promql: &str) -> Result<Vec<PromSample>, String> {
        let url = format!("{}/api/v1/query", self.base);
        let resp = self.agent.get(&url).query("query", promql).call();
        let text = match resp {
            Ok(r) => r.into_string().map_err(|e| format!("{url}: {e}"))?,
            Err(ureq::Error::Status(code, r)) => {
                let body = r.into_string().unwrap_or_default();
                let msg = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or(body);
                return Err(format!("{url}: HTTP {code}: {msg} (query: {promql})"));
            }
            Err(e) => return Err(format!("{url}: {}", e.kind())),
        };
        parse_response(&text).map_err(|e| format!("{url}: {e} (query: {promql})"))
    }

    /// The query's value: the sum over its samples, `None` when it has none.
    pub fn scalar(&self, promql: &str) -> Result<Option<f64>, String> {
        let samples = self.query(promql)?;
        Ok((!samples.is_empty()).then(|| samples.iter().map(|s| s.1).sum()))
    }
}

fn parse_response(text: &str) -> Result<Vec<PromSample>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("answer is not JSON: {e}"))?;
    if v["status"] != "success" {
        return Err(format!("query failed: {}", v["error"].as_str().unwrap_or("no error message")));
    }
    let data = &v["data"];
    let value = |pair: &Value| pair.get(1).and_then(Value::as_str).and_then(|s| s.parse::<f64>().ok());
    match data["resultType"].as_str() {
        Some("vector") => Ok(data["result"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| {
                        let labels = item["metric"]
                            .as_object()
                            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
                            .unwrap_or_default();
                        value(&item["value"]).filter(|x| x.is_finite()).map(|x| (labels, x))
                    })
                    .collect()
            })
            .unwrap_or_default()),
        Some("scalar") => {
            Ok(value(&data["result"]).filter(|x| x.is_finite()).map(|x| (BTreeMap::new(), x)).into_iter().collect())
        }
        other => Err(format!("unexpected result type {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vectors_and_scalars_and_skips_nan() {
        let text = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"pod":"a-1"},"value":[1732560000.1,"0.25"]},
            {"metric":{"pod":"a-2"},"value":[1732560000.1,"NaN"]}]}}"#;
        let s = parse_response(text).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].0["pod"], "a-1");
        assert_eq!(s[0].1, 0.25);
        let text = r#"{"status":"success","data":{"resultType":"scalar","result":[1.0,"3"]}}"#;
        assert_eq!(parse_response(text).unwrap()[0].1, 3.0);
        let text = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert!(parse_response(text).unwrap_err().contains("parse error"));
    }
}
