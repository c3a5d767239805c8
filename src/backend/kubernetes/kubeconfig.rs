//! Reading the API server URL and a bearer token from a kubeconfig file.
//!
//! Only what this backend can use: the current context's cluster `server` and its user's `token`
//! or `tokenFile`. This build speaks plain HTTP to the API server; for a TLS cluster (client
//! certificates, exec plugins, OIDC: every real one) run `kubectl proxy`, which does TLS and
//! authentication with the user's own kubeconfig, and pass its URL (`--api-url
//! http://127.0.0.1:8001`). That keeps credentials handling in kubectl, where it is maintained.

use std::path::Path;

use serde_yaml_ng::Value;

use super::api::Secret;

/// Server URL and token of the kubeconfig's current context.
pub fn load(path: &Path) -> Result<(String, Option<Secret>), String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    let doc: Value = crate::scenario::parse_yaml(&text, &name.to_string()).map_err(|e| format!("not YAML: {e}"))?;
    let current = doc["current-context"].as_str().ok_or_else(|| format!("{name}: `current-context` is missing"))?;
    let find = |list: &str, wanted: &str| -> Result<Value, String> {
        doc[list]
            .as_sequence()
            .and_then(|items| items.iter().find(|i| i["name"].as_str() == Some(wanted)))
            .cloned()
            .ok_or_else(|| format!("{name}: `{list}` has no entry named `{wanted}`"))
    };
    let context = find("contexts", current)?;
    let cluster_name = context["context"]["cluster"]
        .as_str()
        .ok_or_else(|| format!("{name}: context `{current}` names no cluster"))?;
    let cluster = find("clusters", cluster_name)?;
    let server = cluster["cluster"]["server"]
        .as_str()
        .ok_or_else(|| format!("{name}: cluster `{cluster_name}` has no `server`"))?
        .to_string();
    if server.starts_with("https://") {
        return Err(format!(
            "{name}: cluster `{cluster_name}` is served over TLS ({server}); this build talks plain HTTP: \
             run `kubectl proxy` and pass --api-url http://127.0.0.1:8001"
        ));
    }
    if !server.starts_with("http://") {
        return Err(format!("{name}: cluster `{cluster_name}`: `server` is not an http URL"));
    }
    let token = match context["context"]["user"].as_str() {
        None => None,
        Some(user_name) => {
            let user = find("users", user_name)?;
            let u = &user["user"];
            if let Some(t) = u["token"].as_str() {
                Some(Secret::new(t))
            } else if let Some(f) = u["tokenFile"].as_str() {
                // Relative paths in a kubeconfig are relative to the kubeconfig's folder (as kubectl
                // reads them).
                let f = path.parent().unwrap_or(Path::new(".")).join(f);
                let t = std::fs::read_to_string(&f)
                    .map_err(|e| format!("{name}: user `{user_name}`: cannot read tokenFile: {e}"))?;
                Some(Secret::new(t.trim()))
            } else {
                None
            }
        }
    };
    Ok((server, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    const CONFIG: &str = "apiVersion: v1
kind: Config
current-context: lab
contexts:
- name: lab
  context: { cluster: lab-cluster, user: lab-user, namespace: boutique }
clusters:
- name: lab-cluster
  cluster: { server: 'http://127.0.0.1:8001' }
users:
- name: lab-user
  user: { token: abc.def }
";

    #[test]
    fn reads_the_current_context() {
        let f = write(CONFIG);
        let (server, token) = load(f.path()).unwrap();
        assert_eq!(server, "http://127.0.0.1:8001");
        assert_eq!(token, Some(Secret::new("abc.def")));
    }

    #[test]
    fn tls_clusters_point_to_kubectl_proxy_and_missing_parts_are_named() {
        let f = write(&CONFIG.replace("http://127.0.0.1:8001", "https://10.0.0.1:6443"));
        let e = load(f.path()).unwrap_err();
        assert!(e.contains("kubectl proxy") && e.contains("lab-cluster"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "from-file\n").unwrap();
        let cfg = dir.path().join("config");
        std::fs::write(&cfg, CONFIG.replace("token: abc.def", "tokenFile: token")).unwrap();
        assert_eq!(load(&cfg).unwrap().1, Some(Secret::new("from-file")), "tokenFile relative to the kubeconfig");
        let f = write(&CONFIG.replace("current-context: lab", "current-context: other"));
        let e = load(f.path()).unwrap_err();
        assert!(e.contains("no entry named `other`"), "{e}");
        assert!(!e.contains("abc.def"));
    }
}
