"""A client that keeps asking a local endpoint while a new model replaces the one it serves."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

# One raw penguins row, with a header (the target and the other columns are known to the recipe).
ROW = b"island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,year\nDream,45.2,17.8,198,3950,female,2008\n"


class Poller(threading.Thread):
    """A client that asks the endpoint again and again, and remembers when and what it was answered."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.answers: list[tuple[float, int | str, str]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            request = urllib.request.Request(self.url, data=ROW, headers={"Content-Type": "text/csv", "Accept": "text/csv"})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    answer: tuple[int | str, str] = (response.status, response.read().decode())
            except urllib.error.HTTPError as error:
                answer = (error.code, error.read().decode())
            except OSError as error:  # refused, reset: the endpoint was not there
                answer = (type(error).__name__, str(error))
            self.answers.append((time.monotonic(), *answer))
            time.sleep(0.005)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)
