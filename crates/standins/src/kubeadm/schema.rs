//! Test stand-in for kubeadm's strict decoding: the fields of the v1beta4 kubeadm kinds and of
//! KubeletConfiguration v1beta1, with their JSON types. Unknown fields and wrong types are
//! reported with their full dotted path. It does not know every nested field of the kubelet's
//! configuration (nested objects there are accepted as they are), nor defaulting.

use serde_json::Value;

/// A field's type.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    /// A string.
    Str,
    /// An integer.
    Int,
    /// A boolean.
    Bool,
    /// Anything.
    Any,
    /// A list of strings.
    StrList,
    /// A map of strings to strings.
    StrMap,
    /// A list of elements of the type.
    List(&'static Ty),
    /// An object with these fields.
    Obj(&'static [(&'static str, Ty)]),
}

const ARG: Ty = Ty::Obj(&[("name", Ty::Str), ("value", Ty::Str)]);
const ENV: Ty = Ty::Obj(&[
    ("name", Ty::Str),
    ("value", Ty::Str),
    ("valueFrom", Ty::Any),
]);
const VOLUME: Ty = Ty::Obj(&[
    ("name", Ty::Str),
    ("hostPath", Ty::Str),
    ("mountPath", Ty::Str),
    ("readOnly", Ty::Bool),
    ("pathType", Ty::Str),
]);
const TAINT: Ty = Ty::Obj(&[
    ("key", Ty::Str),
    ("value", Ty::Str),
    ("effect", Ty::Str),
    ("timeAdded", Ty::Str),
]);
const NODE_REGISTRATION: Ty = Ty::Obj(&[
    ("name", Ty::Str),
    ("criSocket", Ty::Str),
    ("taints", Ty::List(&TAINT)),
    ("kubeletExtraArgs", Ty::List(&ARG)),
    ("ignorePreflightErrors", Ty::StrList),
    ("imagePullPolicy", Ty::Str),
    ("imagePullSerial", Ty::Bool),
]);
const API_ENDPOINT: Ty = Ty::Obj(&[("advertiseAddress", Ty::Str), ("bindPort", Ty::Int)]);
const TIMEOUTS: Ty = Ty::Obj(&[
    ("controlPlaneComponentHealthCheck", Ty::Str),
    ("kubeletHealthCheck", Ty::Str),
    ("kubernetesAPICall", Ty::Str),
    ("etcdAPICall", Ty::Str),
    ("tlsBootstrap", Ty::Str),
    ("discovery", Ty::Str),
    ("upgradeManifests", Ty::Str),
]);
const BOOTSTRAP_TOKEN: Ty = Ty::Obj(&[
    ("token", Ty::Str),
    ("description", Ty::Str),
    ("ttl", Ty::Str),
    ("expires", Ty::Str),
    ("usages", Ty::StrList),
    ("groups", Ty::StrList),
]);
const PATCHES: Ty = Ty::Obj(&[("directory", Ty::Str)]);
const CONTROL_PLANE_COMPONENT: Ty = Ty::Obj(&[
    ("extraArgs", Ty::List(&ARG)),
    ("extraVolumes", Ty::List(&VOLUME)),
    ("extraEnvs", Ty::List(&ENV)),
]);
const API_SERVER: Ty = Ty::Obj(&[
    ("extraArgs", Ty::List(&ARG)),
    ("extraVolumes", Ty::List(&VOLUME)),
    ("extraEnvs", Ty::List(&ENV)),
    ("certSANs", Ty::StrList),
]);

/// `kubeadm.k8s.io/v1beta4` `InitConfiguration`.
pub const INIT: Ty = Ty::Obj(&[
    ("apiVersion", Ty::Str),
    ("kind", Ty::Str),
    ("bootstrapTokens", Ty::List(&BOOTSTRAP_TOKEN)),
    ("dryRun", Ty::Bool),
    ("nodeRegistration", NODE_REGISTRATION),
    ("localAPIEndpoint", API_ENDPOINT),
    ("certificateKey", Ty::Str),
    ("skipPhases", Ty::StrList),
    ("patches", PATCHES),
    ("timeouts", TIMEOUTS),
]);

/// `kubeadm.k8s.io/v1beta4` `ClusterConfiguration`.
pub const CLUSTER: Ty = Ty::Obj(&[
    ("apiVersion", Ty::Str),
    ("kind", Ty::Str),
    (
        "etcd",
        Ty::Obj(&[
            (
                "local",
                Ty::Obj(&[
                    ("imageRepository", Ty::Str),
                    ("imageTag", Ty::Str),
                    ("dataDir", Ty::Str),
                    ("extraArgs", Ty::List(&ARG)),
                    ("extraEnvs", Ty::List(&ENV)),
                    ("serverCertSANs", Ty::StrList),
                    ("peerCertSANs", Ty::StrList),
                ]),
            ),
            (
                "external",
                Ty::Obj(&[
                    ("endpoints", Ty::StrList),
                    ("caFile", Ty::Str),
                    ("certFile", Ty::Str),
                    ("keyFile", Ty::Str),
                ]),
            ),
        ]),
    ),
    (
        "networking",
        Ty::Obj(&[
            ("serviceSubnet", Ty::Str),
            ("podSubnet", Ty::Str),
            ("dnsDomain", Ty::Str),
        ]),
    ),
    ("kubernetesVersion", Ty::Str),
    ("controlPlaneEndpoint", Ty::Str),
    ("apiServer", API_SERVER),
    ("controllerManager", CONTROL_PLANE_COMPONENT),
    ("scheduler", CONTROL_PLANE_COMPONENT),
    (
        "dns",
        Ty::Obj(&[
            ("imageRepository", Ty::Str),
            ("imageTag", Ty::Str),
            ("disabled", Ty::Bool),
        ]),
    ),
    ("proxy", Ty::Obj(&[("disabled", Ty::Bool)])),
    ("certificatesDir", Ty::Str),
    ("imageRepository", Ty::Str),
    ("featureGates", Ty::Any),
    ("clusterName", Ty::Str),
    ("encryptionAlgorithm", Ty::Str),
    ("certificateValidityPeriod", Ty::Str),
    ("caCertificateValidityPeriod", Ty::Str),
]);

/// `kubeadm.k8s.io/v1beta4` `JoinConfiguration`.
pub const JOIN: Ty = Ty::Obj(&[
    ("apiVersion", Ty::Str),
    ("kind", Ty::Str),
    ("dryRun", Ty::Bool),
    ("nodeRegistration", NODE_REGISTRATION),
    ("caCertPath", Ty::Str),
    (
        "discovery",
        Ty::Obj(&[
            (
                "bootstrapToken",
                Ty::Obj(&[
                    ("token", Ty::Str),
                    ("apiServerEndpoint", Ty::Str),
                    ("caCertHashes", Ty::StrList),
                    ("unsafeSkipCAVerification", Ty::Bool),
                ]),
            ),
            ("file", Ty::Obj(&[("kubeConfigPath", Ty::Str)])),
            ("tlsBootstrapToken", Ty::Str),
        ]),
    ),
    (
        "controlPlane",
        Ty::Obj(&[
            ("localAPIEndpoint", API_ENDPOINT),
            ("certificateKey", Ty::Str),
        ]),
    ),
    ("skipPhases", Ty::StrList),
    ("patches", PATCHES),
    ("timeouts", TIMEOUTS),
]);

const KUBELET_FIELDS: &[&str] = &[
    "address",
    "allowedUnsafeSysctls",
    "authentication",
    "authorization",
    "cgroupDriver",
    "cgroupRoot",
    "cgroupsPerQOS",
    "clusterDNS",
    "clusterDomain",
    "configMapAndSecretChangeDetectionStrategy",
    "containerLogMaxFiles",
    "containerLogMaxSize",
    "containerLogMaxWorkers",
    "containerLogMonitorInterval",
    "containerRuntimeEndpoint",
    "contentType",
    "cpuCFSQuota",
    "cpuCFSQuotaPeriod",
    "cpuManagerPolicy",
    "cpuManagerPolicyOptions",
    "cpuManagerReconcilePeriod",
    "crashLoopBackOff",
    "enableControllerAttachDetach",
    "enableDebugFlagsHandler",
    "enableDebuggingHandlers",
    "enableContentionProfiling",
    "enableProfilingHandler",
    "enableServer",
    "enableSystemLogHandler",
    "enableSystemLogQuery",
    "enforceNodeAllocatable",
    "eventBurst",
    "eventRecordQPS",
    "evictionHard",
    "evictionMaxPodGracePeriod",
    "evictionMinimumReclaim",
    "evictionPressureTransitionPeriod",
    "evictionSoft",
    "evictionSoftGracePeriod",
    "failCgroupV1",
    "failSwapOn",
    "featureGates",
    "fileCheckFrequency",
    "hairpinMode",
    "healthzBindAddress",
    "healthzPort",
    "httpCheckFrequency",
    "imageGCHighThresholdPercent",
    "imageGCLowThresholdPercent",
    "imageMaximumGCAge",
    "imageMinimumGCAge",
    "imagePullCredentialsVerificationPolicy",
    "imageServiceEndpoint",
    "iptablesDropBit",
    "iptablesMasqueradeBit",
    "kernelMemcgNotification",
    "kubeAPIBurst",
    "kubeAPIQPS",
    "kubeReserved",
    "kubeReservedCgroup",
    "kubeletCgroups",
    "localStorageCapacityIsolation",
    "logging",
    "makeIPTablesUtilChains",
    "maxOpenFiles",
    "maxParallelImagePulls",
    "maxPods",
    "memoryManagerPolicy",
    "memorySwap",
    "memoryThrottlingFactor",
    "mergeDefaultEvictionSettings",
    "nodeLeaseDurationSeconds",
    "nodeStatusMaxImages",
    "nodeStatusReportFrequency",
    "nodeStatusUpdateFrequency",
    "oomScoreAdj",
    "podCIDR",
    "podLogsDir",
    "podPidsLimit",
    "podsPerCore",
    "port",
    "preloadedImagesVerificationAllowlist",
    "protectKernelDefaults",
    "providerID",
    "qosReserved",
    "readOnlyPort",
    "registerNode",
    "registerWithTaints",
    "registryBurst",
    "registryPullQPS",
    "reservedMemory",
    "reservedSystemCPUs",
    "resolvConf",
    "rotateCertificates",
    "runOnce",
    "runtimeRequestTimeout",
    "seccompDefault",
    "serializeImagePulls",
    "serverTLSBootstrap",
    "showHiddenMetricsForVersion",
    "shutdownGracePeriod",
    "shutdownGracePeriodByPodPriority",
    "shutdownGracePeriodCriticalPods",
    "singleProcessOOMKill",
    "staticPodPath",
    "staticPodURL",
    "staticPodURLHeader",
    "streamingConnectionIdleTimeout",
    "syncFrequency",
    "systemCgroups",
    "systemReserved",
    "systemReservedCgroup",
    "tlsCertFile",
    "tlsCipherSuites",
    "tlsMinVersion",
    "tlsPrivateKeyFile",
    "topologyManagerPolicy",
    "topologyManagerPolicyOptions",
    "topologyManagerScope",
    "tracing",
    "userNamespaces",
    "volumePluginDir",
    "volumeStatsAggPeriod",
];

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Problems of one document against `ty`: (unknown field paths, type errors).
pub fn check(v: &Value, ty: &Ty) -> (Vec<String>, Vec<String>) {
    let mut unknown = Vec::new();
    let mut types = Vec::new();
    walk(v, ty, "", &mut unknown, &mut types);
    (unknown, types)
}

fn walk(v: &Value, ty: &Ty, path: &str, unknown: &mut Vec<String>, types: &mut Vec<String>) {
    if v.is_null() {
        return;
    }
    let mut wrong = |want: &str| {
        types.push(format!(
            "json: cannot unmarshal {} into Go struct field .{path} of type {want}",
            json_type(v)
        ));
    };
    match ty {
        Ty::Any => {}
        Ty::Str => {
            if !v.is_string() {
                wrong("string");
            }
        }
        Ty::Int => {
            if !(v.is_i64() || v.is_u64()) {
                wrong("int32");
            }
        }
        Ty::Bool => {
            if !v.is_boolean() {
                wrong("bool");
            }
        }
        Ty::StrList => match v.as_array() {
            Some(a) => {
                for (i, e) in a.iter().enumerate() {
                    walk(e, &Ty::Str, &format!("{path}[{i}]"), unknown, types);
                }
            }
            None => wrong("[]string"),
        },
        Ty::StrMap => match v.as_object() {
            Some(m) => {
                for (k, e) in m {
                    walk(e, &Ty::Str, &format!("{path}.{k}"), unknown, types);
                }
            }
            None => wrong("map[string]string"),
        },
        Ty::List(elem) => match v.as_array() {
            Some(a) => {
                for (i, e) in a.iter().enumerate() {
                    walk(e, elem, &format!("{path}[{i}]"), unknown, types);
                }
            }
            None => wrong("[]object"),
        },
        Ty::Obj(fields) => match v.as_object() {
            Some(m) => {
                for (k, e) in m {
                    let child = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match fields.iter().find(|(n, _)| n == k) {
                        Some((_, t)) => walk(e, t, &child, unknown, types),
                        None => unknown.push(child),
                    }
                }
            }
            None => wrong("object"),
        },
    }
}

/// Unknown top-level fields of a KubeletConfiguration.
pub fn kubelet_unknown(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|m| {
            m.keys()
                .filter(|k| {
                    !matches!(k.as_str(), "apiVersion" | "kind")
                        && !KUBELET_FIELDS.contains(&k.as_str())
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_unknown_fields_and_types_with_paths() {
        let v = json!({
            "apiVersion": "kubeadm.k8s.io/v1beta4",
            "kind": "InitConfiguration",
            "nodeRegistration": {"name": 7, "nmae": "x", "kubeletExtraArgs": [{"name": "node-ip", "value": "10.0.0.1", "extra": 1}]},
            "bootstrapTokens": [{"token": "abcdef.0123456789abcdef", "ttl": "24h"}],
            "localAPIEndpoint": {"bindPort": "6443"},
            "bogus": true
        });
        let (unknown, types) = check(&v, &INIT);
        assert_eq!(
            unknown,
            [
                "bogus",
                "nodeRegistration.kubeletExtraArgs[0].extra",
                "nodeRegistration.nmae"
            ]
        );
        assert_eq!(types.len(), 2, "{types:?}");
        assert!(
            types
                .iter()
                .any(|t| t.contains(".nodeRegistration.name of type string")),
            "{types:?}"
        );
        assert!(
            types.iter().any(|t| t
                .contains("string into Go struct field .localAPIEndpoint.bindPort of type int32")),
            "{types:?}"
        );
        let (u, t) = check(
            &json!({"networking": {"podSubnet": "10.244.0.0/16"}, "apiServer": {"certSANs": ["a", 1]}}),
            &CLUSTER,
        );
        assert!(u.is_empty());
        assert_eq!(t.len(), 1);
        assert_eq!(
            kubelet_unknown(
                &json!({"kind": "KubeletConfiguration", "cgroupDriver": "systemd", "cgroupDrvier": "x"})
            ),
            ["cgroupDrvier"]
        );
    }
}
