/**
 * hnsproxy — the Kubernetes service proxy for Windows nodes.
 *
 * @module
 */
if (import.meta.main) {
  console.log("hnsproxy 0.1.0");
}
