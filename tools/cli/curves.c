/* Training curves: the history as CSV, and as a self-contained SVG line chart (no scripts, no
 * external fonts) that any browser or image viewer shows. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ---- CSV --------------------------------------------------------------------------------- */

/* A number in the shortest digits that read back exactly, or an empty field for NaN (what
 * pandas reads back as NaN). */
static void csv_num(cli_buf *b, double v, bool last)
{
    char num[40];
    if (isfinite(v) && tg_float_repr(v, num, sizeof num) > 0)
        cli_buf_printf(b, "%s", num);
    cli_buf_printf(b, last ? "\n" : ",");
}

char *cli_history_csv(const tg_logreg_step *h, int n, size_t *len)
{
    cli_buf b = {0};
    cli_buf_printf(&b, "iteration,train_loss,objective,val_loss,grad_max,seconds\n");
    for (int i = 0; i < n; i++) {
        cli_buf_printf(&b, "%d,", h[i].iteration);
        csv_num(&b, h[i].train_loss, false);
        csv_num(&b, h[i].objective, false);
        csv_num(&b, h[i].val_loss, false);
        csv_num(&b, h[i].grad_max, false);
        csv_num(&b, h[i].seconds, true);
    }
    if (b.oom) {
        cli_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.data;
}

/* ---- SVG --------------------------------------------------------------------------------- */

enum { W = 720, H = 420, LEFT = 78, RIGHT = 24, TOP = 44, BOTTOM = 54 };

typedef struct {
    double x0, x1, y0, y1; /* data ranges */
} frame;

static double px(const frame *f, double x)
{
    return LEFT + (x - f->x0) / (f->x1 - f->x0) * (W - LEFT - RIGHT);
}
static double py(const frame *f, double y)
{
    return H - BOTTOM - (y - f->y0) / (f->y1 - f->y0) * (H - TOP - BOTTOM);
}

/* 1, 2 or 5 times a power of ten: about `count` ticks over span. */
static double nice_step(double span, int count)
{
    double raw = span / count, mag = pow(10.0, floor(log10(raw))), r = raw / mag;
    return (r < 1.5 ? 1.0 : r < 3.5 ? 2.0 : r < 7.5 ? 5.0 : 10.0) * mag;
}

static void xml_text(cli_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            cli_buf_printf(b, "&amp;");
            break;
        case '<':
            cli_buf_printf(b, "&lt;");
            break;
        case '>':
            cli_buf_printf(b, "&gt;");
            break;
        case '"':
            cli_buf_printf(b, "&quot;");
            break;
        default:
            if ((unsigned char)*s < 0x20)
                break;
            size_t n = cli_utf8_len(s);
            /* SVG is XML: well-formed UTF-8, and no U+FFFE or U+FFFF (EF BF BE, EF BF BF) */
            bool nonchar = n == 3 && memcmp(s, "\xEF\xBF", 2) == 0 && (unsigned char)s[2] >= 0xBE;
            if (!n || nonchar)
                cli_buf_printf(b, "\xEF\xBF\xBD");
            else
                cli_buf_printf(b, "%.*s", (int)n, s);
            s += n ? n - 1 : 0;
        }
    }
}

static frame fit_frame(const tg_logreg_step *h, int n)
{
    frame f = {0.0, 1.0, INFINITY, -INFINITY};
    for (int i = 0; i < n; i++) {
        if (h[i].iteration > f.x1)
            f.x1 = h[i].iteration;
        double v[2] = {h[i].train_loss, h[i].val_loss};
        for (int k = 0; k < 2; k++)
            if (isfinite(v[k])) {
                f.y0 = fmin(f.y0, v[k]);
                f.y1 = fmax(f.y1, v[k]);
            }
    }
    if (!(f.y0 <= f.y1))
        f.y0 = 0.0, f.y1 = 1.0;
    double pad = (f.y1 - f.y0) * 0.05;
    if (!(pad > 0.0))
        pad = fabs(f.y0) > 0.0 ? fabs(f.y0) * 0.05 : 0.5;
    f.y0 -= pad;
    f.y1 += pad;
    return f;
}

static void axes(cli_buf *b, const frame *f)
{
    double ys = nice_step(f->y1 - f->y0, 6);
    for (double y = ceil(f->y0 / ys) * ys; y <= f->y1; y += ys) {
        double v = fabs(y) < ys * 1e-9 ? 0.0 : y;
        cli_buf_printf(b,
                       "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#e5e5e5\"/>\n",
                       LEFT, py(f, v), W - RIGHT, py(f, v));
        cli_buf_printf(b, "<text x=\"%d\" y=\"%.2f\" text-anchor=\"end\">%.4g</text>\n", LEFT - 6,
                       py(f, v) + 4, v);
    }
    double xs = nice_step(f->x1 - f->x0, 8);
    if (xs < 1.0)
        xs = 1.0; /* iterations are whole numbers */
    for (double x = 0.0; x <= f->x1 + 1e-9; x += xs) {
        cli_buf_printf(b,
                       "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#e5e5e5\"/>\n",
                       px(f, x), TOP, px(f, x), H - BOTTOM);
        cli_buf_printf(b, "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\">%.0f</text>\n",
                       px(f, x), H - BOTTOM + 18, x);
    }
    cli_buf_printf(b,
                   "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
                   "stroke=\"#333\"/>\n",
                   LEFT, TOP, W - LEFT - RIGHT, H - TOP - BOTTOM);
    cli_buf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">iteration</text>\n",
                   (LEFT + W - RIGHT) / 2, H - 14);
    cli_buf_printf(b,
                   "<text x=\"18\" y=\"%d\" text-anchor=\"middle\" "
                   "transform=\"rotate(-90 18 %d)\">log loss</text>\n",
                   (TOP + H - BOTTOM) / 2, (TOP + H - BOTTOM) / 2);
}

/* One series as polylines, broken where values are missing; a lone point gets a dot. */
static void series(cli_buf *b, const frame *f, const tg_logreg_step *h, int n, bool val,
                   const char *color)
{
    int run = 0;
    for (int i = 0; i <= n; i++) {
        double v = i < n ? (val ? h[i].val_loss : h[i].train_loss) : NAN;
        if (isfinite(v)) {
            if (run++ == 0)
                cli_buf_printf(b,
                               "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
                               "points=\"",
                               color);
            cli_buf_printf(b, "%.2f,%.2f ", px(f, h[i].iteration), py(f, v));
            continue;
        }
        if (run > 0)
            cli_buf_printf(b, "\"/>\n");
        if (run == 1) {
            const tg_logreg_step *s = &h[i - 1];
            cli_buf_printf(b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%s\"/>\n",
                           px(f, s->iteration), py(f, val ? s->val_loss : s->train_loss), color);
        }
        run = 0;
    }
}

static bool has_val(const tg_logreg_step *h, int n)
{
    for (int i = 0; i < n; i++)
        if (isfinite(h[i].val_loss))
            return true;
    return false;
}

static void legend(cli_buf *b, bool val)
{
    int x = W - RIGHT - 130, y = TOP + 16;
    cli_buf_printf(b,
                   "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#1f77b4\" "
                   "stroke-width=\"2\"/><text x=\"%d\" y=\"%d\">training</text>\n",
                   x, y, x + 24, y, x + 30, y + 4);
    if (val)
        cli_buf_printf(b,
                       "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ff7f0e\" "
                       "stroke-width=\"2\"/><text x=\"%d\" y=\"%d\">validation</text>\n",
                       x, y + 18, x + 24, y + 18, x + 30, y + 22);
}

char *cli_history_svg(const tg_logreg_step *h, int n, const char *title, size_t *len)
{
    cli_buf b = {0};
    frame f = fit_frame(h, n);
    cli_buf_printf(&b,
                   "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                   "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
                   "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                   W, H, W, H);
    cli_buf_printf(&b, "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">",
                   (LEFT + W - RIGHT) / 2);
    xml_text(&b, title);
    cli_buf_printf(&b, "</text>\n");
    axes(&b, &f);
    series(&b, &f, h, n, false, "#1f77b4");
    bool val = has_val(h, n);
    if (val)
        series(&b, &f, h, n, true, "#ff7f0e");
    legend(&b, val);
    cli_buf_printf(&b, "</svg>\n");
    if (b.oom) {
        cli_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.data;
}
