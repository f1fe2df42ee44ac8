"""A service's `environment:` as guest files: what SSH sessions and login shells see.

`holosc exec` and healthchecks run over SSH, so sshd itself sets the variables
(`SetEnv` in a drop-in; OpenSSH 7.8+, read by the `Include sshd_config.d/*.conf` of
Debian, Ubuntu and Fedora). Login shells on the console get them from profile.d.
cloud-init writes both before sshd starts on the first boot.
"""

from __future__ import annotations

from holosc.core.model import Service, WriteFile
from holosc.core.render.escape import shell_word, sshd_word

SSHD_DROPIN = "/etc/ssh/sshd_config.d/50-holos-environment.conf"
PROFILE = "/etc/profile.d/holos-environment.sh"
HEADER = "# Written by holosc from holos.yaml (environment:, env_file:).\n"


def environment_files(service: Service) -> list[WriteFile]:
    if not service.environment:
        return []
    # sshd takes the first SetEnv line only (measured): every variable goes on one line.
    sshd = "SetEnv " + " ".join(sshd_word(f"{k}={v}") for k, v in service.environment) + "\n"
    profile = "".join(f"export {k}={shell_word(v)}\n" for k, v in service.environment)
    return [
        WriteFile(SSHD_DROPIN, HEADER + sshd, "0644"),
        WriteFile(PROFILE, HEADER + profile, "0644"),
    ]
