// Chart.js, from npm like the other browser libraries. Its ES module build imports a bare
// specifier ("@kurkle/color") that a browser can resolve only through an import map, and an
// inline import map is exactly what this dashboard's CSP (script-src 'self') forbids; the
// self-contained UMD build loaded as an ordinary same-origin script needs neither.

const SRC = "/ui/node_modules/chart.js/dist/chart.umd.min.js";
let loading = null;

/** Resolves with the Chart constructor; rejects when the library is not installed. */
export function loadChart() {
  if (window.Chart) return Promise.resolve(window.Chart);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = SRC;
      script.onload = () => (window.Chart ? resolve(window.Chart) : reject(new Error("Chart.js did not load")));
      script.onerror = () => {
        loading = null;
        script.remove();
        reject(new Error("The chart library is missing (run `make ui`)."));
      };
      document.head.append(script);
    });
  }
  return loading;
}

/** A colour from the stylesheet's custom properties (canvas cannot read var(--x) itself). */
export function cssColor(name, fallback) {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return value || fallback;
}
