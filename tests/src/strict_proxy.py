"""An HTTP proxy in front of a real registry that behaves like a registry
without OCI 1.1 artifact support: it refuses every manifest that carries its
own `artifactType` (400 MANIFEST_INVALID) and passes everything else through.

Usage: python3 strict_proxy.py LISTEN_PORT UPSTREAM_HOST:PORT
Prints "ready" once listening. Requests are answered whole (test blobs are small).
"""
import http.client
import http.server
import json
import sys

PORT = int(sys.argv[1])
UPSTREAM = sys.argv[2]
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate"}


def top_level_artifact_type(body):
    """A manifest's own `artifactType` (descriptors inside an index may keep theirs)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and "artifactType" in doc


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self):
        body = self._body()
        if self.command == "PUT" and "/manifests/" in self.path and top_level_artifact_type(body):
            err = json.dumps({"errors": [{"code": "MANIFEST_INVALID",
                                          "message": "manifest invalid",
                                          "detail": "artifactType is not supported"}]}).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(err)))
            self.end_headers()
            self.wfile.write(err)
            return
        conn = http.client.HTTPConnection(UPSTREAM, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body if body or self.command in
                     ("PUT", "POST", "PATCH") else None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        # A HEAD answer keeps the upstream's length; others carry what was read.
        length = resp.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
        self.send_header("Content-Length", length or "0")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle


server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
