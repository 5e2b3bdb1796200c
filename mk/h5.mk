# The H5 page's browser tests (tests/e2e/test_h5_browser.py): Debian's
# Chromium at /usr/bin/chromium, driven by playwright-core and checked by
# axe-core, both pinned in tests/browser/package-lock.json and installed
# into that folder with `npm ci` (no browser download: Playwright uses the
# Debian build through executablePath).

H5_BROWSER := tests/browser
CHROMIUM   := /usr/bin/chromium
# A Chinese font (Debian's smallest CJK one, 5 MB): without it Chromium draws
# the page's text as empty boxes, in the screenshots and for any text metrics.
CJK_FONT   := /usr/share/fonts/truetype/wqy/wqy-microhei.ttc
APT_GET    := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: h5-browser chromium

install: h5-browser

h5-browser: chromium $(H5_BROWSER)/node_modules/.installed

# Installed once through apt (root on these machines; sudo where there is one).
# Each package's own file is the cache: nothing runs while it exists.
chromium: $(CHROMIUM) $(CJK_FONT)

$(CHROMIUM):
	$(APT_GET) update -qq
	$(APT_GET) install -y -qq --no-install-recommends chromium

$(CJK_FONT):
	$(APT_GET) update -qq
	$(APT_GET) install -y -qq --no-install-recommends fonts-wqy-microhei

$(H5_BROWSER)/node_modules/.installed: $(H5_BROWSER)/package.json $(H5_BROWSER)/package-lock.json
	cd $(H5_BROWSER) && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: h5-screenshots

# The README's screenshots (375 px wide), refreshed by the browser suite.
h5-screenshots: install
	YZTC_H5_SCREENSHOTS=$(CURDIR)/docs/h5 $(PY) -m pytest -q tests/e2e/test_h5_browser.py
