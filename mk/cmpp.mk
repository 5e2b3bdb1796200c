# The SMS notifier's CMPP 3.0 test peer: SMSGate's sms-core
# (com.chinamobile.cmos:sms-core, pinned in tests/peers/cmpp_sms_core/pom.xml)
# in a small Java program, run by tests/integration/test_sms_cmpp_peer.py as an
# ISMG and as an SP we did not write. Built once into one jar (Maven keeps the
# downloaded dependencies in ~/.m2); rebuilt when its pom or source changes.

CMPP_PEER := tests/peers/cmpp_sms_core
CMPP_PEER_JAR := $(CMPP_PEER)/target/cmpp-peer.jar

.PHONY: cmpp-sms-core

install: cmpp-sms-core

cmpp-sms-core: $(CMPP_PEER_JAR)

$(CMPP_PEER_JAR): $(CMPP_PEER)/pom.xml $(wildcard $(CMPP_PEER)/src/main/java/yztc/peer/*.java)
	cd $(CMPP_PEER) && mvn -q -B -Dstyle.color=never package -DskipTests
	touch $@
