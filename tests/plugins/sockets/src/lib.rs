//! A tester that tries the network the raw way — a TCP connection, a UDP
//! datagram and a name lookup — to the address in its settings: each must
//! fail at run time (the host's WASI context allows no socket), and the
//! plugin reports what each attempt got.

use loktar_sdk::prelude::*;

struct Sockets;

impl Tester for Sockets {
    fn describe() -> PluginInfo {
        PluginInfo::new("sockets", "0.1.0", Role::Tester).with_capabilities(&[Capability::Log])
    }

    fn test(_context: RunContext, package: Package) -> Result<TestReport, Error> {
        let target = package
            .settings
            .split("\"target\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("127.0.0.1:9")
            .to_string();
        let mut reached = Vec::new();
        match std::net::TcpStream::connect(&target) {
            Ok(_) => reached.push("tcp"),
            Err(e) => log::info(&format!("tcp refused: {e}")),
        }
        match std::net::UdpSocket::bind("0.0.0.0:0").and_then(|socket| socket.send_to(b"attack", &target)) {
            Ok(_) => reached.push("udp"),
            Err(e) => log::info(&format!("udp refused: {e}")),
        }
        match std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80)).map(|mut found| found.next()) {
            Ok(Some(_)) => reached.push("lookup"),
            Ok(None) => log::info("lookup refused: no address"),
            Err(e) => log::info(&format!("lookup refused: {e}")),
        }
        if reached.is_empty() {
            Ok(TestReport { passed: false, summary: "the network stayed closed".into() })
        } else {
            Ok(TestReport { passed: true, summary: format!("attack succeeded: {}", reached.join(", ")) })
        }
    }
}

loktar_sdk::export!(tester: Sockets);
