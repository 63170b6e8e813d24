//! The one TLS crypto provider (ring) for every TLS user in the process: kube, reqwest, lapin.
//! A leaf: it imports nothing from the app.

/// Installs ring as the process's default provider, once. Whatever builds a TLS client calls
/// this first (reqwest has no provider of its own here, by choice: one provider, built fast).
pub fn ensure_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first: that one is used, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
