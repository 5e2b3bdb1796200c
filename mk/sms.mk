# The SMS notifier's test peer: node-smpp (npm `smpp`, pinned in
# tests/peers/node_smpp/package-lock.json), run by a test as an SMS centre
# we did not write. Installed into that folder with `npm ci`.

NODE_SMPP := tests/peers/node_smpp

.PHONY: node-smpp

install: node-smpp

node-smpp: $(NODE_SMPP)/node_modules/.installed

$(NODE_SMPP)/node_modules/.installed: $(NODE_SMPP)/package.json $(NODE_SMPP)/package-lock.json
	cd $(NODE_SMPP) && npm ci --no-audit --no-fund --loglevel=error
	touch $@
