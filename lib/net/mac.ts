/**
 * MAC address text: hnsproxy's form is lower-case hex pairs joined by
 * dashes (`00-15-5d-aa-bb-cc`). HNS writes them upper case
 * (`00-15-5D-AA-BB-CC`) and the OS with colons; HNS reads either case, so
 * MACs are compared in this form and sent in it.
 *
 * @module
 */

/** Normalize a MAC for comparison: lower case, dash-separated. */
export function normalizeMac(mac: string | undefined): string {
  if (typeof mac === "string" && isNormalMac(mac)) return mac;
  return (mac ?? "").trim().toLowerCase().replaceAll(":", "-");
}

/**
 * A MAC address in hnsproxy's form, or undefined when `text` is not six
 * hex pairs separated by `-` or `:` (one separator throughout).
 */
export function parseMac(text: string): string | undefined {
  if (!/^[0-9a-fA-F]{2}([-:])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$/.test(text)) return undefined;
  return normalizeMac(text);
}

/** Whether `mac` holds only what normalizing keeps as it is (0-9, a-f, `-`). */
function isNormalMac(mac: string): boolean {
  for (let i = 0; i < mac.length; i++) {
    const c = mac.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || c === 45)) return false;
  }
  return true;
}
