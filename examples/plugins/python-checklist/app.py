"""A `checklist` tester written in Python: the package lists the files it
must hold, one per line, in a checklist file; the test passes when every
one is there.

Build: componentize-py -d ../../../wit -w tester componentize app -o checklist.wasm
(see docs/plugins/python.md).
"""

import json
import os

from componentize_py_types import Err
from wit_world import WitWorld
from wit_world.imports import log, types

PACKAGE = "/package"


class WitWorld(WitWorld):
    def describe(self) -> types.PluginInfo:
        # The tester world imports `log` and `process`: both are declared,
        # though only `log` is used (the host refuses undeclared imports).
        return types.PluginInfo(
            name="checklist",
            version="0.1.0",
            roles=[types.Role.TESTER],
            capabilities=[types.Capability.LOG, types.Capability.PROCESS],
        )

    def test(self, context: types.RunContext, pkg: types.Package) -> types.TestReport:
        # The package's `build_info` keys, and the operator's
        # `[plugins.checklist.settings]`, each as a JSON object in a string.
        package_settings = json.loads(pkg.settings or "{}")
        plugin_settings = json.loads(context.settings or "{}")
        name = package_settings.get("checklist", plugin_settings.get("checklist", "CHECKLIST"))
        path = os.path.join(PACKAGE, name)
        if not os.path.isfile(path):
            raise Err(
                types.Error(
                    message=f"package `{pkg.name}` has no `{name}`",
                    hint=f"list the files the package must hold in `{pkg.dir}/{name}`, one per line",
                )
            )
        with open(path, encoding="utf-8") as checklist:
            wanted = [line.strip() for line in checklist if line.strip() and not line.startswith("#")]
        missing = [item for item in wanted if not os.path.exists(os.path.join(PACKAGE, item))]
        for item in wanted:
            level = log.Level.ERROR if item in missing else log.Level.INFO
            log.write(level, f"{'missing' if item in missing else 'found'}: {item}")
        if missing:
            return types.TestReport(passed=False, summary=f"{len(missing)} of {len(wanted)} missing: {', '.join(missing)}")
        return types.TestReport(passed=True, summary=f"{len(wanted)} of {len(wanted)} present")
