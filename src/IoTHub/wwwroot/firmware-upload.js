// The firmware page's upload: the browser streams the chosen file straight to POST /api/v1/firmware with
// XMLHttpRequest (whose upload events give the progress bar), as application/octet-stream. The image never passes
// through the page's SignalR circuit, and XMLHttpRequest sends a File from disk without reading it into memory.
// The UI's cookie signs the request in; a state-changing API call made with it must also carry the antiforgery
// token in the RequestVerificationToken header (Gateway/Auth/CookieLogin.cs), which the page hands over.

let current = null;

/** The chosen file's name and size, or null when none is chosen. */
export function describe(input) {
    const file = input && input.files && input.files[0];
    return file ? { name: file.name, size: file.size } : null;
}

/**
 * Uploads the input's file to url. Reports progress to dotnet.UploadProgress(sent, total) at most ~8 times a second
 * (and once at the end), and resolves (never rejects) with {status, body, error, canceled}: status 0 when no HTTP
 * answer came (network error, connection closed, canceled).
 */
export function upload(input, url, token, dotnet) {
    return new Promise(resolve => {
        const file = input && input.files && input.files[0];
        if (!file) {
            resolve({ status: 0, body: "", error: "Choose a file first.", canceled: false });
            return;
        }
        const xhr = new XMLHttpRequest();
        current = xhr;
        let last = 0;
        const report = (sent, total, force) => {
            const now = performance.now();
            if (!force && now - last < 125) return;
            last = now;
            dotnet.invokeMethodAsync("UploadProgress", sent, total).catch(() => { /* the page was left */ });
        };
        xhr.upload.onprogress = e => report(e.loaded, e.lengthComputable ? e.total : file.size, e.lengthComputable && e.loaded === e.total);
        xhr.upload.onload = () => report(file.size, file.size, true);
        const done = outcome => {
            current = null;
            resolve(outcome);
        };
        xhr.onload = () => done({ status: xhr.status, body: xhr.responseText || "", error: null, canceled: false });
        xhr.onerror = () => done({ status: 0, body: "", error: "The connection to the hub broke off during the upload.", canceled: false });
        xhr.ontimeout = () => done({ status: 0, body: "", error: "The upload timed out.", canceled: false });
        xhr.onabort = () => done({ status: 0, body: "", error: "Upload canceled.", canceled: true });
        xhr.open("POST", url);
        xhr.setRequestHeader("Content-Type", "application/octet-stream");
        xhr.setRequestHeader("Accept", "application/json");
        if (token) xhr.setRequestHeader("RequestVerificationToken", token);
        xhr.send(file);
    });
}

/** Cancels the upload under way, if any. */
export function cancel() {
    if (current) current.abort();
}

/** Empties the file input (after a successful upload). */
export function clear(input) {
    if (input) input.value = "";
}
