package invitepage

import (
	"fmt"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// qrSVG draws text as a QR code (error correction level M, the quiet
// zone of four modules included) in SVG: one path of the dark modules,
// each row's runs as rectangles, so the page needs no image request.
func qrSVG(text string) (string, error) {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return "", fmt.Errorf("invitepage: QR code: %w", err)
	}
	return svgOf(q.Bitmap()), nil
}

// svgOf renders a module matrix (true = dark) at one unit per module;
// the page scales it.
func svgOf(m [][]bool) string {
	n := len(m)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="256" height="256" shape-rendering="crispEdges" role="img" aria-label="QR code of the invite link">`, n, n)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n)
	for y, row := range m {
		for x := 0; x < len(row); {
			if !row[x] {
				x++
				continue
			}
			start := x
			for x < len(row) && row[x] {
				x++
			}
			fmt.Fprintf(&b, "M%d %dh%dv1h-%dz", start, y, x-start, x-start)
		}
	}
	b.WriteString(`"/></svg>`)
	return b.String()
}
