//! A tester that opens a TCP connection: its raw socket imports must keep it
//! from loading at all.

use loktar_sdk::prelude::*;

struct Sockets;

impl Tester for Sockets {
    fn describe() -> PluginInfo {
        PluginInfo::new("sockets", "0.1.0", Role::Tester).with_capabilities(&[Capability::Log])
    }

    fn test(_context: RunContext, _package: Package) -> Result<TestReport, Error> {
        match std::net::TcpStream::connect("127.0.0.1:9") {
            Ok(_) => Ok(TestReport { passed: true, summary: "attack succeeded: connected".into() }),
            Err(e) => Err(Error::new(format!("attack failed: {e}"))),
        }
    }
}

loktar_sdk::export!(tester: Sockets);
