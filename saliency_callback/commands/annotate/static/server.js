// Talking to the annotate server: every request carries the session's token; probe changes
// are sent one after another, in order, and each is autosaved by the server when it lands.
export class Server {
  constructor(token, onStatus) {
    this.token = token;
    this.onStatus = onStatus;
    this.queue = Promise.resolve();
    this.pending = 0;
  }

  async request(path, init = {}) {
    const response = await fetch(path, {
      ...init,
      headers: { "X-Token": this.token, ...(init.headers || {}) },
    });
    if (!response.ok) {
      let message = `${response.status}`;
      try { message = (await response.json()).error || message; } catch { /* not JSON */ }
      throw new Error(message);
    }
    return response;
  }

  async json(path) { return (await this.request(path)).json(); }
  async bytes(path) { return (await this.request(path)).arrayBuffer(); }

  post(path, body) {
    return this.request(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body ?? {}),
    }).then((r) => r.json());
  }

  // Queues one probe's change; the status line says when everything has been autosaved.
  update(index, change) {
    this.pending += 1;
    this.onStatus("saving…");
    this.queue = this.queue
      .then(() => this.post(`/api/probe/${index}`, change))
      .then(() => {
        this.pending -= 1;
        if (!this.pending) this.onStatus("autosaved");
      })
      .catch((err) => {
        this.pending -= 1;
        this.onStatus(`not autosaved: ${err.message}`, true);
      });
    return this.queue;
  }

  // Saves once every queued change has landed.
  async save() {
    await this.queue;
    return this.post("/api/save");
  }

  quit() { return this.post("/api/quit"); }
}
