"""The `kubernetes` Service as pods reach it: https://<node address>:443, with a server
certificate of this node's cluster CA (made here, handed to pods as the ServiceAccount
volume's ca.crt), each TLS connection forwarded to kubelite with the kubeconfig's client
certificate. So a pod's in-cluster configuration (KUBERNETES_SERVICE_HOST/PORT, the token
and CA under /var/run/secrets/kubernetes.io/serviceaccount) works as on a cluster.

kubelite authorizes nothing, so the token is not checked here either: RBAC is not enforced
(cluster README, "What it does not model").
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlparse

from kubernetes import client, config

log = logging.getLogger("apifront")
PORT = 443
NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")


def make_certs(d: Path, address: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for `address` and the Service's names (openssl)."""
    d.mkdir(parents=True, exist_ok=True)
    ca, ca_key, crt, key, csr = d / "ca.crt", d / "ca.key", d / "server.crt", d / "server.key", d / "server.csr"
    sans = ",".join([f"IP:{address}"] + [f"DNS:{n}" for n in NAMES])

    def sh(*argv):
        subprocess.run(["openssl", *argv], check=True, capture_output=True)

    sh("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
       "-subj", "/CN=act-node-agent-ca")
    sh("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=kube-apiserver")
    ext = d / "san.ext"
    ext.write_text(f"subjectAltName={sans}\n")
    sh("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(crt),
       "-days", "2", "-extfile", str(ext))
    return ca, crt, key


class ApiFront:
    def __init__(self, kubeconfig: str, address: str, workdir: Path, port: int = PORT):
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        up = urlparse(cfg.host)
        self.upstream = (up.hostname, up.port or 443)
        self.upstream_ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
        self.upstream_ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
        self.upstream_server_name = up.hostname
        self.ca, crt, key = make_certs(workdir, address)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(crt, key)
        self.address, self.port = address, port

    def start(self) -> None:
        """Serve from an event loop of its own (one thread: an SSL object is not shared between threads)."""
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def main():
            self.server = await asyncio.start_server(self._serve, self.address, self.port, ssl=self.ctx,
                                                     reuse_address=True)
            ready.set()
            await self.server.serve_forever()

        threading.Thread(target=lambda: self.loop.run_until_complete(main()), daemon=True, name="apifront").start()
        if not ready.wait(10):
            raise RuntimeError(f"the API front did not start on {self.address}:{self.port}")

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)

    async def _serve(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream, ssl=self.upstream_ctx,
                                                       server_hostname=self.upstream_server_name)
        except (OSError, ssl.SSLError) as e:
            log.info("kubelite refused a connection: %s", e)
            down_w.close()
            return
        await asyncio.gather(_pump(down_r, up_w), _pump(up_r, down_w))


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        dst.close()
