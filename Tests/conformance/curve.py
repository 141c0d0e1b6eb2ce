"""CURVE for the conformance client: with ECP_CONFORMANCE_CURVE=1 (or `Worker(curve=True)`) each
worker gets a key pair file of its own (mode 0600) and a clients directory holding this client's
public key, and every socket the client makes from the worker's context is a CURVE client of it.

Key files have the worker's format (see Sources/ZeroMQ/CurveKeyFile.swift):

    # comment
    public-key = <40 Z85 characters>
    secret-key = <40 Z85 characters>
"""

import os
import pathlib

import zmq

#: The variable that switches CURVE on for every worker of the suite.
ENV = "ECP_CONFORMANCE_CURVE"


def enabled():
    """Whether the suite runs with CURVE (ECP_CONFORMANCE_CURVE=1)."""
    return os.environ.get(ENV, "").strip() == "1"


def key_file_text(public, secret=None):
    """The text of a key file: both keys for a secret key file, the public one alone otherwise."""
    lines = ["# CURVE key pair (Z85)." if secret else "# CURVE public key (Z85).", f"public-key = {public.decode('ascii')}"]
    if secret:
        lines.append(f"secret-key = {secret.decode('ascii')}")
    return "\n".join(lines) + "\n"


def _write(path, text, mode):
    # Created with the final mode from the start: the secret is never readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)
    os.chmod(path, mode)


class CurveKeys:
    """A worker's key pair and one admitted client's, written under `directory`."""

    def __init__(self, directory):
        if not zmq.has("curve"):
            raise RuntimeError("this libzmq has no CURVE support")
        self.directory = pathlib.Path(directory)
        self.server_public, self.server_secret = zmq.curve_keypair()
        self.client_public, self.client_secret = zmq.curve_keypair()
        self.key_file = self.directory / "curve" / "worker.key"
        self.clients_dir = self.directory / "curve" / "clients"
        self.clients_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.clients_dir.parent, 0o700)
        os.chmod(self.clients_dir, 0o755)
        _write(self.key_file, key_file_text(self.server_public, self.server_secret), 0o600)
        _write(self.clients_dir / "conformance.pub", key_file_text(self.client_public), 0o644)

    def worker_args(self):
        """The worker's options for these keys."""
        return ["--curve-key-file", str(self.key_file), "--curve-clients", str(self.clients_dir)]

    def secure(self, socket, public=None, secret=None):
        """Makes `socket` a CURVE client of the worker, with the admitted key pair unless another
        is given. Call before connect."""
        socket.setsockopt(zmq.CURVE_SERVERKEY, self.server_public)
        socket.setsockopt(zmq.CURVE_PUBLICKEY, public or self.client_public)
        socket.setsockopt(zmq.CURVE_SECRETKEY, secret or self.client_secret)
        return socket

    def context(self):
        """A context whose every socket is a CURVE client of the worker with the admitted key."""
        keys = self

        class CurveContext(zmq.Context):
            def socket(self, socket_type, *args, **kwargs):
                return keys.secure(super().socket(socket_type, *args, **kwargs))

        return CurveContext()


def keys_for(option, directory):
    """The CurveKeys of a worker, or None: `option` True or False decides, None follows
    ECP_CONFORMANCE_CURVE."""
    if option is None:
        option = enabled()
    return CurveKeys(directory) if option else None
