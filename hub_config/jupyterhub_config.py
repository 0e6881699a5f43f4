"""JupyterHub on one machine, with the headstart catalog as its managed service `headstart`.

Run it with `make up`, or `jupyterhub -f hub_config/jupyterhub_config.py` from the repository root.
Everything it keeps lives under `$HEADSTART_HOME` (default `var/`): the catalog that
`headstart --home var demo` seeds, and the hub's own state in `var/hub/`. The environment variables
below exist so that tests can run a second hub beside this one; an operator rarely sets them.

- HEADSTART_HUB_URL: the public URL the proxy serves (default http://127.0.0.1:8000/).
- HEADSTART_HUB_API_PORT, HEADSTART_PROXY_API_PORT, HEADSTART_SERVICE_PORT: loopback ports of the
  hub itself (8081), the proxy's REST API (8001) and the catalog service (8010).
- HEADSTART_AUTHENTICATOR: `shared-password` (the demo: one password, any user name) or `native`
  (NativeAuthenticator: users sign up with their own password and an admin approves them).
- HEADSTART_HUB_PASSWORD: the shared password; default, the one in `var/hub/shared-password`.
- HEADSTART_HUB_ADMINS: comma-separated admin user names (default none with shared-password,
  `admin` with native, since someone must approve the sign-ups).
- HEADSTART_USERS: `shared` (the default, a trial on one trusted machine: every user's server runs
  as the hub's own account) or `system` (each user's server runs as the system account of the
  user's name, in its home; the hub runs as root, and the accounts exist already).
- HEADSTART_USER_PYTHON: the interpreter users' servers run (default the hub's own); with `system`,
  one that every user may run, with jupyterhub and headstart importable.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (provided by JupyterHub's config loader)

HUB_CONFIG = Path(__file__).resolve().parent
HOME = Path(os.environ.get("HEADSTART_HOME") or HUB_CONFIG.parent / "var").resolve()
STATE = HOME / "hub"
STATE.mkdir(parents=True, exist_ok=True)
# The catalog's database, its store and the hub's cookie secret are the service's alone.
HOME.chmod(0o700)

PUBLIC_URL = os.environ.get("HEADSTART_HUB_URL", "http://127.0.0.1:8000/").rstrip("/") + "/"
LOOPBACK = "127.0.0.1"

# The catalog's scopes: reading (list, show, download, leaderboards) and writing (everything else,
# evaluations and predictions on request included: each runs a job on the cluster).
# headstart.extension.authz.CatalogAuthorizer asks for them on every catalog request.
READ_SCOPE = "custom:headstart:read"
WRITE_SCOPE = "custom:headstart:write"
SERVICE_ACCESS = "access:services!service=headstart"

# --- network: everything on loopback, the proxy in front --------------------------------------

c.JupyterHub.bind_url = PUBLIC_URL
c.JupyterHub.hub_bind_url = f"http://{LOOPBACK}:{os.environ.get('HEADSTART_HUB_API_PORT', '8081')}"
c.JupyterHub.proxy_class = "configurable-http-proxy"
c.ConfigurableHTTPProxy.api_url = f"http://{LOOPBACK}:{os.environ.get('HEADSTART_PROXY_API_PORT', '8001')}"
c.ConfigurableHTTPProxy.pid_file = str(STATE / "proxy.pid")

# --- the hub's own state, beside the catalog -------------------------------------------------

c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")

# --- sign-in ---------------------------------------------------------------------------------

AUTHENTICATOR = os.environ.get("HEADSTART_AUTHENTICATOR", "shared-password")
if AUTHENTICATOR == "shared-password":
    c.JupyterHub.authenticator_class = "shared-password"
    password = os.environ.get("HEADSTART_HUB_PASSWORD")
    password_file = STATE / "shared-password"
    if not password and password_file.exists():
        password = password_file.read_text().strip()
    if not password:
        raise SystemExit(
            f"No shared password: set HEADSTART_HUB_PASSWORD, or write one to {password_file} "
            "(`make up` makes one)."
        )
    c.SharedPasswordAuthenticator.user_password = password
    # Anyone with the password may pick a user name: that is what a one-machine demo wants.
    c.Authenticator.allow_all = True
    default_admins = ""
elif AUTHENTICATOR == "native":
    # pip install jupyterhub-nativeauthenticator; users sign up at /hub/signup.
    c.JupyterHub.authenticator_class = "native"
    # NativeAuthenticator's own approval step decides who signs in, so the hub allows all of them.
    c.Authenticator.allow_all = True
    c.NativeAuthenticator.open_signup = False
    default_admins = "admin"
else:
    raise SystemExit(f"HEADSTART_AUTHENTICATOR must be shared-password or native, not {AUTHENTICATOR!r}")
c.Authenticator.admin_users = {
    name.strip() for name in os.environ.get("HEADSTART_HUB_ADMINS", default_admins).split(",") if name.strip()
}

# --- users' own servers ----------------------------------------------------------------------

USERS = os.environ.get("HEADSTART_USERS", "shared")
if USERS == "shared":
    # Users are not operating-system accounts: every server runs as the hub's user, in its own
    # folder. That isolates nothing, which is acceptable on one trusted machine and nowhere else.
    c.JupyterHub.spawner_class = "simple"
    c.SimpleLocalProcessSpawner.home_dir_template = str(STATE / "users" / "{username}")
elif USERS == "system":
    # Each user is the system account of that name, and their server runs as it (setuid from the
    # hub, which must run as root): a user's code reads what that account may read, which is not
    # the service's home (0700, above) nor another user's (made 0700 on every spawn, below).
    if os.geteuid() != 0:
        raise SystemExit("HEADSTART_USERS=system spawns servers as users' accounts: run the hub as root")
    c.JupyterHub.spawner_class = "localprocess"
else:
    raise SystemExit(f"HEADSTART_USERS must be shared or system, not {USERS!r}")
# An interpreter chosen on purpose, not whatever `jupyterhub-singleuser` PATH finds first.
c.Spawner.cmd = [os.environ.get("HEADSTART_USER_PYTHON") or sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.ip = LOOPBACK
# jupyter-server refuses to run as root unless told; containers and CI machines often are root.
ROOT_ARGS = ["--allow-root"] if os.geteuid() == 0 else []
# A user's server never opens a catalog of its own: the service below is the only one. Nothing that
# headstart installs enables the extension, but a config file could (the environment's, or a user's
# ~/.jupyter); the command line wins over every config file.
USER_SERVER_ARGS = ["--ServerApp.jpserver_extensions=headstart.extension=False"]
c.Spawner.args = [*ROOT_ARGS, *USER_SERVER_ARGS]
# Kernels find the catalog through the proxy, with the server's own JUPYTERHUB_API_TOKEN.
c.Spawner.environment = {"HEADSTART_URL": f"{PUBLIC_URL}services/headstart/"}
# The server's token (JUPYTERHUB_API_TOKEN, which kernels inherit) gets the `server` role's scopes
# plus the catalog's, so that a notebook reaches the service with no token pasted by hand.
c.Spawner.server_token_scopes = [
    "users:activity!user",
    "access:servers!server",
    SERVICE_ACCESS,
    READ_SCOPE,
    WRITE_SCOPE,
]

# A new user finds the quickstart notebook in their home: it is copied there on their first spawn.
QUICKSTART = "quickstart.ipynb"


def quickstart_notebook() -> Path:
    """The quickstart: the repository's `notebooks/`, or the copy installed under share/."""
    here = HUB_CONFIG.parent / "notebooks" / QUICKSTART
    if here.exists():
        return here
    return Path(sys.prefix) / "share" / "headstart" / "notebooks" / QUICKSTART


# Run by the users' interpreter alone (-S: no site-packages), as the user's own account when users
# have system accounts: in a home the user controls, a root process would follow whatever links they
# left there. A marker keeps the quickstart from coming back after the user deletes or renames it,
# and their own edits are never overwritten.
PLACE_QUICKSTART = (
    "import sys, pathlib\n"
    "home, name = pathlib.Path(sys.argv[1]), sys.argv[2]\n"
    "marker, target = home / '.headstart' / 'quickstart-copied', home / name\n"
    "if not marker.exists():\n"
    "    if not target.exists() and not target.is_symlink():\n"
    "        target.write_bytes(sys.stdin.buffer.read())\n"
    "    marker.parent.mkdir(exist_ok=True)\n"
    "    marker.touch()\n"
)


def copy_quickstart(spawner: object) -> None:
    """On a user's spawn: the quickstart in their home, the first time. With system accounts, their
    home is made theirs alone (0700) first."""
    account: dict[str, object] = {}
    if USERS == "system":
        user = pwd.getpwnam(spawner.user.name)  # type: ignore[attr-defined]
        home = Path(user.pw_dir)
        home.mkdir(parents=True, exist_ok=True)
        os.chown(home, user.pw_uid, user.pw_gid)
        home.chmod(0o700)
        account = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    else:
        home = Path(spawner.home_dir)  # type: ignore[attr-defined]
        home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [spawner.cmd[0], "-S", "-c", PLACE_QUICKSTART, str(home), QUICKSTART],  # type: ignore[attr-defined]
        input=quickstart_notebook().read_bytes(),
        cwd=home,
        check=True,
        timeout=30,
        **account,  # type: ignore[arg-type]
    )


c.Spawner.pre_spawn_hook = copy_quickstart

# --- the catalog service ---------------------------------------------------------------------

SERVICE_URL = f"http://{LOOPBACK}:{os.environ.get('HEADSTART_SERVICE_PORT', '8010')}"
c.JupyterHub.services = [
    {
        "name": "headstart",
        "display": True,
        "url": SERVICE_URL,
        # A jupyter-server with JupyterHub's identity provider, the catalog extension and the
        # catalog's authorizer; headstart_service_config.py holds its config.
        "command": [
            sys.executable,
            "-m",
            "jupyterhub.singleuser",
            f"--config={HUB_CONFIG / 'headstart_service_config.py'}",
            *ROOT_ARGS,
        ],
        "cwd": str(HOME),
        "environment": {"HEADSTART_HOME": str(HOME)},
        # Signing in to the service from a browser grants its tokens the catalog's scopes (at most
        # those the user holds); the user has already signed in to the hub, so no consent page.
        "oauth_client_allowed_scopes": [READ_SCOPE, WRITE_SCOPE],
        "oauth_no_confirm": True,
    }
]
# The service only checks tokens, which takes no scope of its own, so it needs no role.

# --- scopes and roles ------------------------------------------------------------------------

c.JupyterHub.custom_scopes = {
    READ_SCOPE: {"description": "Browse the headstart catalog: list, show, download, leaderboards."},
    WRITE_SCOPE: {
        "description": "Change the headstart catalog: create, upload, train, evaluate, publish, delete.",
        "subscopes": [READ_SCOPE],
    },
}
c.JupyterHub.load_roles = [
    {
        # Every user: their own hub resources (the default `user` role's `self`), and the catalog.
        "name": "user",
        "scopes": ["self", SERVICE_ACCESS, READ_SCOPE, WRITE_SCOPE],
    },
]
