//! The OTLP listener settings (plain values, no I/O): an address, or `off`.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Default OTLP/gRPC listen address (the OpenTelemetry default port).
pub const DEFAULT_OTLP_GRPC_ADDR: &str = "127.0.0.1:4317";
/// Default OTLP/HTTP listen address (the OpenTelemetry default port).
pub const DEFAULT_OTLP_HTTP_ADDR: &str = "127.0.0.1:4318";

/// Where an OTLP listener binds, or `off` (no listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtlpListen(pub Option<SocketAddr>);

impl OtlpListen {
    pub(crate) fn default_of(text: &str, port: u16) -> Self {
        OtlpListen(Some(
            text.parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], port))),
        ))
    }
}

impl fmt::Display for OtlpListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("off"),
        }
    }
}

impl FromStr for OtlpListen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "off" {
            return Ok(OtlpListen(None));
        }
        text.parse()
            .map(|addr| OtlpListen(Some(addr)))
            .map_err(|_| {
                format!("{text:?} is neither a socket address (127.0.0.1:4317) nor \"off\"")
            })
    }
}

impl Serialize for OtlpListen {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OtlpListen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_or_off() {
        assert_eq!("off".parse::<OtlpListen>(), Ok(OtlpListen(None)));
        let on: OtlpListen = "127.0.0.1:0".parse().unwrap();
        assert_eq!(on.to_string(), "127.0.0.1:0");
        assert!("nowhere".parse::<OtlpListen>().is_err());
    }
}
