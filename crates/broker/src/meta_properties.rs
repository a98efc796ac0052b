//! Kafka's `meta.properties`: which cluster and node a data directory
//! belongs to. Written once when the directory is formatted; a later start
//! with a different `node.id` is refused rather than mixing identities.

use std::path::Path;

const FILE: &str = "meta.properties";

/// Returns the directory's cluster id, formatting the directory if new.
pub fn load_or_create(dir: &Path, node_id: i32) -> Result<String, String> {
    let path = dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let get = |key: &str| {
                text.lines()
                    .filter_map(|l| l.split_once('='))
                    .find(|(k, _)| k.trim() == key)
                    .map(|(_, v)| v.trim().to_string())
            };
            let stored_node = get("node.id").and_then(|v| v.parse::<i32>().ok());
            if stored_node != Some(node_id) {
                return Err(format!(
                    "{} was formatted for node.id={}, but this broker has node.id={node_id}\nhint: start with --override node.id={} or use another log.dirs",
                    path.display(),
                    stored_node.map_or("?".to_string(), |n| n.to_string()),
                    stored_node.map_or("?".to_string(), |n| n.to_string()),
                ));
            }
            get("cluster.id").ok_or_else(|| format!("{} has no cluster.id", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cluster_id = odradek_storage::base64_url(uuid::Uuid::new_v4());
            let directory_id = odradek_storage::base64_url(uuid::Uuid::new_v4());
            let text = format!(
                "#\n#Written by odradek\nnode.id={node_id}\ndirectory.id={directory_id}\nversion=1\ncluster.id={cluster_id}\n"
            );
            let tmp = dir.join(format!("{FILE}.tmp"));
            std::fs::write(&tmp, text).map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
            Ok(cluster_id)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn created_once_then_checked() {
        let dir = tempfile::tempdir().unwrap();
        let id = super::load_or_create(dir.path(), 1).unwrap();
        assert_eq!(super::load_or_create(dir.path(), 1).unwrap(), id);
        let err = super::load_or_create(dir.path(), 2).unwrap_err();
        assert!(err.contains("node.id=1"), "{err}");
    }
}
