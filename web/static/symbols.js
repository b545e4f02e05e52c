// The symbol directory behind the add box's autocomplete: /v1/symbols
// (thousands of names), searched by prefix with a binary search, then by
// substring, and capped.

export class SymbolIndex {
  constructor(list = []) {
    this.set(list);
  }

  set(list) {
    this.list = [...new Set(list)].sort();
    this.loaded = Date.now();
  }

  get size() {
    return this.list.length;
  }

  has(sym) {
    const i = this.#lower(sym);
    return this.list[i] === sym;
  }

  // search returns up to limit symbols: those starting with q first (in
  // order), then those containing it.
  search(q, limit = 10) {
    q = q.trim().toUpperCase();
    if (!q) return [];
    const out = [];
    for (let i = this.#lower(q); i < this.list.length && out.length < limit && this.list[i].startsWith(q); i++) {
      out.push(this.list[i]);
    }
    if (out.length < limit) {
      for (const s of this.list) {
        if (s.includes(q) && !s.startsWith(q)) {
          out.push(s);
          if (out.length === limit) break;
        }
      }
    }
    return out;
  }

  #lower(q) {
    let lo = 0, hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.list[mid] < q) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
