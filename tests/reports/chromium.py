"""Headless Chromium driven over the DevTools protocol (a websocket; `websockets` is in the lock file): load a
page with the network cut off, collect console errors, exceptions and every request, take a screenshot.

The DevTools protocol reports these as structured events, which is sturdier than parsing Chromium's log
output (whose format and verbosity change between releases).
"""

import base64
import contextlib
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from websockets.sync.client import connect

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-default-apps", "--disable-extensions",
         "--disable-sync", "--mute-audio", "--hide-scrollbars", "--remote-debugging-port=0",
         # belt and braces: any request that escaped the offline emulation would go to a dead proxy and fail
         "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


@dataclass
class PageLoad:
    requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    checks: dict = field(default_factory=dict)
    loaded: bool = False


class Chromium:
    def __init__(self, binary: str, profile: Path, timeout: float = 60):
        self.timeout = timeout
        self.process = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        self.socket = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=timeout)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.socket.send(json.dumps(message))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            reply = json.loads(self.socket.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
        raise TimeoutError(method)

    def wait_for(self, method: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        if any(e.get("method") == method for e in self.events):
            return True
        while time.monotonic() < deadline:
            try:
                event = json.loads(self.socket.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            except TimeoutError:
                break
            self.events.append(event)
            if event.get("method") == method:
                return True
        return False

    def load(self, url: str, screenshot: Path, checks: str, width: int = 1200) -> PageLoad:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=session)
        self.call("Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1,
                                                        "uploadThroughput": -1}, session=session)
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1,
                                                          "mobile": False}, session=session)
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=session)
        result = PageLoad(loaded=self.wait_for("Page.loadEventFired", self.timeout))
        self.wait_for("never", 0.5)  # let late console messages arrive
        evaluated = self.call("Runtime.evaluate", {"expression": checks, "returnByValue": True}, session=session)
        result.checks = evaluated.get("result", {}).get("value") or {}
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent":
                result.requests.append(params["request"]["url"])
            elif method == "Network.loadingFailed":
                result.failed_requests.append(f"{params.get('errorText')} ({params.get('requestId')})")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                result.console_errors.append(" ".join(str(a.get("value", a.get("description")))
                                                      for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                result.console_errors.append(f"{params['entry'].get('source')}: {params['entry'].get('text')}")
            elif method == "Runtime.exceptionThrown":
                result.exceptions.append(params["exceptionDetails"].get("text", "exception"))
        return result

    def close(self) -> None:
        try:
            if getattr(self, "socket", None):
                with contextlib.suppress(Exception):  # the browser may already be gone: closing anyway
                    self.call("Browser.close")
                self.socket.close()
        finally:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
