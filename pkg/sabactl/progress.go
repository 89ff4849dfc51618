package sabactl

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progressReader draws an upload progress bar with rate and ETA on a
// terminal (stderr only, redrawn at most 5 times a second); elsewhere it
// passes the data through silently.
type progressReader struct {
	r     io.Reader
	w     io.Writer
	what  string
	total int64
	n     int64
	start time.Time
	last  time.Time
	mu    sync.Mutex
}

// withProgress wraps r if w is a terminal.
func withProgress(r io.Reader, w io.Writer, what string, total int64) io.Reader {
	f, ok := w.(*os.File)
	if !ok {
		return r
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return r
	}
	now := time.Now()
	return &progressReader{r: r, w: w, what: what, total: total, start: now}
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += int64(n)
	now := time.Now()
	if err == io.EOF || p.n == p.total {
		fmt.Fprintf(p.w, "\r%s\n", progressLine(p.what, p.n, p.total, now.Sub(p.start)))
		p.last = now.Add(time.Hour) // finished: draw no more
	} else if now.Sub(p.last) >= 200*time.Millisecond {
		p.last = now
		fmt.Fprintf(p.w, "\r%s", progressLine(p.what, p.n, p.total, now.Sub(p.start)))
	}
	return n, err
}

// progressLine renders "what [=====>    ]  42% 12.0 MiB/s ETA 3s".
func progressLine(what string, n, total int64, elapsed time.Duration) string {
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = min(float64(n)/float64(total), 1)
	}
	done := int(frac * width)
	bar := strings.Repeat("=", done) + strings.Repeat(" ", width-done)
	if done < width {
		bar = bar[:done] + ">" + bar[done+1:]
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(n) / s
	}
	eta := "--"
	if rate > 0 && n < total {
		eta = time.Duration(float64(total-n) / rate * float64(time.Second)).Round(time.Second).String()
	} else if n >= total {
		eta = elapsed.Round(100 * time.Millisecond).String()
	}
	return fmt.Sprintf("%s [%s] %3.0f%% %s/s ETA %s ", what, bar, frac*100, formatBytes(int64(rate)), eta)
}

// formatBytes is a byte count for people.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
