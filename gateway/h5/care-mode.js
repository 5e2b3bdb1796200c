// 关怀模式 before the first paint: a classic script in <head>, so the page
// never flashes in the small type first. Only this flag is kept in
// localStorage (never anything personal or a token); main.js owns the switch.
try {
  if (localStorage.getItem("yztc.care") === "1") document.documentElement.classList.add("care");
} catch (e) {
  // storage disabled: the page starts in the normal mode
}
