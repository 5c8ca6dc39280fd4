// Content-script entry (a classic script: manifests and chrome.scripting inject classic scripts). Loads the
// ES modules of content/main.js into this frame's isolated world once; the value of the last expression is a
// promise that chrome.scripting.executeScript waits for, so the service worker knows when it may send messages.
(() => {
  const key = "__deepfakeCheckerReady";
  if (!globalThis[key]) {
    globalThis[key] = import(chrome.runtime.getURL("content/main.js"))
      .then((module) => module.start())
      .then(
        () => true,
        (error) => {
          console.warn("deepfake checker: the content script failed to start", error);
          delete globalThis[key];
          return false;
        },
      );
  }
  return globalThis[key];
})();
