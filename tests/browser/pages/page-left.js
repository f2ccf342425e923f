function touchstreamPageLeft(collector, writeKey, ids) {
  var sent = false;
  function left() {
    if (sent) return;
    sent = true;
    var who = ids();
    navigator.sendBeacon(collector + "/v1/t", JSON.stringify({
      writeKey: writeKey, event: "Page Left", anonymousId: who.anonymousId, userId: who.userId || undefined,
      properties: {path: location.pathname, url: location.href}, timestamp: new Date().toISOString()
    }));
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") left(); else sent = false;
  });
  addEventListener("pagehide", left);
}
