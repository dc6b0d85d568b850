// A minimal XMLHttpRequest for node over fetch: what @rpldy/sender and
// @rpldy/shared's request call (open, setRequestHeader, send, abort,
// status, response, getResponseHeader, getAllResponseHeaders, readyState,
// upload.onprogress, onload/onerror/onabort/ontimeout), and window.
// Bodies are sent whole (Blob slices), responses read as text.
'use strict'
class XMLHttpRequest {
  constructor() {
    this.readyState = 0
    this.status = 0
    this.response = ''
    this.responseText = ''
    this.withCredentials = false
    this.upload = { onprogress: null, addEventListener() {} }
    this._headers = {}
    this._ac = new AbortController()
  }
  open(method, url) { this._method = method; this._url = url; this.readyState = 1 }
  setRequestHeader(k, v) { this._headers[k] = String(v) }
  getResponseHeader(k) { return this._res ? this._res.headers.get(k) : null }
  getAllResponseHeaders() {
    if (!this._res) return ''
    let s = ''
    this._res.headers.forEach((v, k) => { s += k + ': ' + v + '\r\n' })
    return s
  }
  abort() { this._aborted = true; this._ac.abort() }
  send(body) {
    if (process.env.XHR_DEBUG) console.error('xhr', this._method, this._url, JSON.stringify(this._headers), body && body.size)
    const size = body && body.size !== undefined ? body.size : 0
    fetch(this._url, { method: this._method, headers: this._headers, body: body ?? undefined, signal: this._ac.signal })
      .then(async (res) => {
        this._res = res
        this.status = res.status
        this.responseText = this.response = await res.text()
        this.readyState = 4
        if (size && this.upload.onprogress) this.upload.onprogress({ loaded: size, total: size, lengthComputable: true })
        this.onload && this.onload()
      })
      .catch((err) => {
        if (process.env.XHR_DEBUG) console.error('xhr error', err)
        this.readyState = 4
        if (this._aborted) this.onabort && this.onabort()
        else this.onerror && this.onerror()
      })
  }
}
globalThis.XMLHttpRequest = XMLHttpRequest
// rpldy chunks (and so speaks tus) only where it finds window, a
// window.document and window.Blob: a browser. Node has Blob; window is the
// global object, and the document an empty one nothing reads.
globalThis.window = globalThis
globalThis.document = {}
