//! What a Kubernetes pod's status says, for the cluster checks (`probes::kube`) and the
//! port-forwards (`forward`) alike.

use k8s_openapi::api::core::v1::Pod;

/// The pod's `Ready` condition is `True` (its containers pass their readiness probes).
pub fn ready_condition(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Ready and not being deleted: a pod that can take traffic. A Terminating pod may still report
/// Ready for its grace period; it is on its way out.
pub fn serving(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none() && ready_condition(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ready: &str, deleting: bool) -> Pod {
        let mut v = serde_json::json!({"metadata": {"name": "rabbitmq-0"}, "status": {"phase": "Running",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": ready}]}});
        if deleting {
            v["metadata"]["deletionTimestamp"] = "2026-11-28T12:00:00Z".into();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn ready_and_serving() {
        assert!(ready_condition(&pod("True", false)) && serving(&pod("True", false)));
        assert!(ready_condition(&pod("True", true)) && !serving(&pod("True", true)), "Terminating takes no traffic");
        assert!(!ready_condition(&pod("False", false)) && !serving(&pod("False", false)));
        assert!(!serving(&Pod::default()), "no status, not ready");
    }
}
