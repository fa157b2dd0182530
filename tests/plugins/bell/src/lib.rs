//! A test notifier: logs each event; fails for a package named `bell-fails`.

use loktar_sdk::prelude::*;

struct Bell;

impl Notifier for Bell {
    fn describe() -> PluginInfo {
        PluginInfo::new("bell", "0.1.0", Role::Notifier).with_capabilities(&[Capability::Log])
    }

    fn notify(_context: RunContext, event: String) -> Result<(), Error> {
        log::info(&format!("event: {event}"));
        if event.contains("\"package\":\"bell-fails\"") {
            return Err(Error::new("the bell is broken"));
        }
        Ok(())
    }
}

loktar_sdk::export!(notifier: Bell);
